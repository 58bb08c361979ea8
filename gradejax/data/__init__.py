"""Stage 1, prepare: workbook -> photos -> aligned face chips -> labels -> manifest -> TFDS.

Nothing here imports the networks or anything later in the pipeline.
"""
