"""The capture side: read the dead kernel's memory and save it."""
