"""The Triton model repository: config.pbtxt in and out, publish, versions, validation rules."""
