"""Experiments built on the library: the main job behind ``diagsim run`` (main_job) and the
paper-reproduction pipeline behind ``diagsim figures`` (figures).
"""
