"""The training stage: `trtforge train` turns a ModelDeployment's spec.model.train into a model folder.

Only `datasets` is light (numpy, scikit-learn, fsspec: conversion reads spec datasets through it); the
other modules import TensorFlow and are loaded only when the train subcommand runs.
"""
