"""`python -m gradejax.prepare` (console script `gradejax-prepare`): the command line of
:mod:`gradejax.data.prepare`."""
from gradejax.data.prepare import command

if __name__ == '__main__':
  command()
