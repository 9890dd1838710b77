"""IVR surveys: flows (`ivr/*.yaml`), their checks and interpreter, prompts, the FastAGI server."""
