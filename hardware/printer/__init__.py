"""The printer link: a pyserial transport, the G-code line protocol and each firmware's dialect."""
