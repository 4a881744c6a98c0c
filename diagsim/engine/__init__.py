"""The run driver: ``simulate`` / ``resume`` (driver), the stepper protocol every level
implements (stepper), what a run records (recording), its result (result) and progress
bars (progress).
"""
