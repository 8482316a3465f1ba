"""Copy detection: an image descriptor that stays put when a picture is re-uploaded, resized and
recompressed, and moves when its content changes (SSCD, Pizzi et al. 2022, is the public model of
this kind). A CLIP embedding is the wrong tool for near-duplicates: it is trained to be invariant
to exactly the small edits (an object moved, recoloured, reshaped) that tell two pictures apart.

``model.py`` the network and its safetensors directory format; ``worlddata.py`` training pairs
drawn from the world; ``train.py`` the training command; the ``copy_embed`` step lives in
``curate_dedup.copy_embed``.
"""
