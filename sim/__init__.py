"""The simulated world around the agent: virtual printer, detection stand-in, camera frames."""
