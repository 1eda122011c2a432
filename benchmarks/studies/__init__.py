"""Studies: an application of the public API run, summarised and plotted end to end,
each behind a benchmark section (:mod:`benchmarks.apps`) and a runnable example:
audio-visual recognition against audio SNR (:mod:`.av_snr`,
``examples/audio_visual_snr.py``) and image + text recognition (:mod:`.image_text`,
``examples/image_text_recognition.py``); see docs/applications.md."""
