"""Speech units and vocoders: everything between the talker's units and a waveform (the model's token2wav).

`mel` (log-mel analysis + Griffin-Lim), `units` (k-means unit extractor), `unit2mel` + `token2wav` (the local
backend), `cosyvoice2` (CosyVoice2 flow + HiFT from a local checkpoint), `dataset_units` (the pipeline's
speech-units step). Every backend implements `base.Token2Wav`.
"""
