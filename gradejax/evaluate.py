"""`python -m gradejax.evaluate` (console script `gradejax-evaluate`): the command line of
:mod:`gradejax.evaluation.evaluate`."""
from gradejax.evaluation.evaluate import command

if __name__ == '__main__':
  command()
