"""`python -m gradejax.train` (console script `gradejax-train`): the command line of
:mod:`gradejax.training.train`."""
from gradejax.training.train import command

if __name__ == '__main__':
  command()
