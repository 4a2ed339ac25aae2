"""The page: printer, live view, history and health in any browser on the LAN, behind a login."""
