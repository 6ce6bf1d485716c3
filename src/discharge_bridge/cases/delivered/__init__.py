"""Services delivered: each piece of help given to a person, counted from a catalogue."""
