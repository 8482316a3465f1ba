"""Make open_clip_train 3.3 read shards written with webdataset >= 0.2.100.

Newer webdataset ends each tar with an empty ``{}`` end-of-shard marker, which open_clip_train's
``group_by_keys_nothrow`` indexes as a file (``KeyError: 'fname'``) and the run dies after the
first shard. We expand tars without the marker; open_clip groups samples by key anyway.
"""

from __future__ import annotations


def tolerate_shard_end_markers() -> None:
    import open_clip_train.data as data
    from webdataset.tariterators import tar_file_expander, url_opener

    if getattr(data.tarfile_to_samples_nothrow, "_curate_patched", False):
        return

    def tarfile_to_samples_nothrow(src, handler=data.log_and_continue):  # type: ignore[no-untyped-def]
        streams = url_opener(src, handler=handler)
        files = tar_file_expander(streams, handler=handler, eof_value=None)
        return data.group_by_keys_nothrow(files, handler=handler)

    tarfile_to_samples_nothrow._curate_patched = True  # type: ignore[attr-defined]
    data.tarfile_to_samples_nothrow = tarfile_to_samples_nothrow
