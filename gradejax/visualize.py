"""`python -m gradejax.visualize` (console script `gradejax-visualize`): the command line of
:mod:`gradejax.report.attribution_report`."""
from gradejax.report.attribution_report import command

if __name__ == '__main__':
  command()
