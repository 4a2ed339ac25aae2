"""Hardware abstraction: code that talks to real devices on the Pi (camera, printer)."""
