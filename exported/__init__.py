"""The shipped default model: data files only, found by runtime.default_model_path()."""
