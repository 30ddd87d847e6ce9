"""`trtforge convert`: from a trained model to verified engines (precision transforms, accuracy gate,
engine builders per backend, engine cache, engine.json). Only the `convert` subcommand imports this."""
