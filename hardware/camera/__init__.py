"""Camera backends behind one interface: capture() returns JPEG bytes."""
