"""`python -m gradejax.demo_data` (console script `gradejax-demo-data`): the command line of
:mod:`gradejax.data.demo_data`."""
from gradejax.data.demo_data import command

if __name__ == '__main__':
  command()
