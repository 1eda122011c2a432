"""``builtin:general``: the general model shipped with polymodal (the concept bridge for
pictures, MiniLM for words, Whisper then MiniLM for speech), how ``make model`` builds
it, and how the temperature of its bridge was chosen."""
