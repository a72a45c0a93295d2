"""cgad.data: the llm.c shard format, DataLoaderLite's batches, wrap-around, striding and resume."""
import os

import numpy as np
import pytest

from cgad.data import DataLoaderLite, read_shard, split_shard_files, write_shard


def _shard(tmp_path, name, tokens):
    path = tmp_path / name
    write_shard(path, tokens)
    return str(path)


def test_shard_layout_matches_llm_c(tmp_path):
    tokens = np.array([0, 1, 50256, 65535, 7], dtype=np.int64)
    path = _shard(tmp_path, "a.bin", tokens)
    raw = open(path, "rb").read()
    header = np.frombuffer(raw[:1024], dtype=np.int32)
    assert header[0] == 20240520 and header[1] == 1 and header[2] == 5
    assert not header[3:].any()
    assert len(raw) == 1024 + 2 * 5
    np.testing.assert_array_equal(np.frombuffer(raw[1024:], dtype=np.uint16), tokens)
    np.testing.assert_array_equal(read_shard(path), tokens)


def test_write_shard_rejects_out_of_range(tmp_path):
    with pytest.raises(ValueError, match="uint16"):
        write_shard(tmp_path / "x.bin", [1, 70000])


def test_bad_shards_name_the_file(tmp_path):
    good = _shard(tmp_path, "good.bin", np.arange(100))
    raw = open(good, "rb").read()
    bad_magic = tmp_path / "magic.bin"
    bad_magic.write_bytes(b"\x00" * 4 + raw[4:])
    truncated = tmp_path / "trunc.bin"
    truncated.write_bytes(raw[:-10])
    tiny = tmp_path / "tiny.bin"
    tiny.write_bytes(raw[:100])
    for path, msg in ((bad_magic, "magic"), (truncated, "truncated"), (tiny, "header")):
        with pytest.raises(ValueError, match=msg) as e:
            read_shard(path)
        assert str(path) in str(e.value)
    with pytest.raises(FileNotFoundError):
        read_shard(tmp_path / "missing.bin")
    with pytest.raises(FileNotFoundError):
        DataLoaderLite(2, 4, str(tmp_path / "nothing_*.bin"))


@pytest.mark.parametrize("damage", ["version", "count-up", "count-down", "trailing", "body"])
def test_damaged_shards_name_the_file(tmp_path, damage):
    path = _shard(tmp_path, "d.bin", np.arange(200) % 50)
    raw = bytearray(open(path, "rb").read())
    header = np.frombuffer(raw[:1024], dtype=np.int32).copy()
    if damage == "version":
        header[1] = 7
    elif damage == "count-up":
        header[2] += 1
    elif damage == "count-down":
        header[2] -= 3
    elif damage == "trailing":
        raw += b"\x00"
    elif damage == "body":  # a flipped high byte: a token id no 50-token vocabulary has
        raw[1024 + 2 * 123 + 1] ^= 0xFF
    raw[:1024] = header.tobytes()
    open(path, "wb").write(bytes(raw))
    with pytest.raises(ValueError) as e:
        loader = DataLoaderLite(4, 8, path, vocab_size=50)
        for _ in range(200 // 32 + 1):
            loader.next_batch()
    assert path in str(e.value)
    if damage == "body":
        assert "token 123 has id" in str(e.value) and "vocab_size 50" in str(e.value)


def test_too_short_shard_names_the_file(tmp_path):
    path = _shard(tmp_path, "short.bin", np.arange(16))
    with pytest.raises(ValueError, match="too short") as e:
        DataLoaderLite(2, 8, path)  # needs 2*8+1 = 17 tokens
    assert "short.bin" in str(e.value)
    DataLoaderLite(3, 5, path)  # 16 tokens suffice for 3*5+1


def test_batches_are_aligned_and_shifted(tmp_path):
    tokens = np.arange(1000) % 500
    path = _shard(tmp_path, "a.bin", tokens)
    loader = DataLoaderLite(4, 8, path)
    for i in range(3):
        x, y = loader.next_batch()
        x, y = x.numpy(), y.numpy()
        assert x.shape == (4, 8) and x.dtype == np.int64 and y.dtype == np.int64
        start = i * 32
        np.testing.assert_array_equal(x.reshape(-1), tokens[start:start + 32])
        np.testing.assert_array_equal(y.reshape(-1), tokens[start + 1:start + 33])


def test_walks_shards_and_wraps(tmp_path):
    a = np.arange(0, 50)
    b = np.arange(100, 140)
    paths = [_shard(tmp_path, "s_000.bin", a), _shard(tmp_path, "s_001.bin", b)]
    loader = DataLoaderLite(2, 5, str(tmp_path / "s_*.bin"))
    assert loader.files == paths
    seen = [loader.next_batch()[0].numpy().reshape(-1) for _ in range(8)]
    # shard a (50 tokens) yields 4 batches of 10 (the 5th would need token 50), b yields 3
    np.testing.assert_array_equal(seen[0], a[0:10])
    np.testing.assert_array_equal(seen[3], a[30:40])
    np.testing.assert_array_equal(seen[4], b[0:10])
    np.testing.assert_array_equal(seen[6], b[20:30])
    np.testing.assert_array_equal(seen[7], a[0:10])  # wrapped around


def test_process_striding_partitions_the_data(tmp_path):
    tokens = np.arange(2000) % 60000
    path = _shard(tmp_path, "a.bin", tokens)
    loaders = [DataLoaderLite(2, 4, path, process_rank=r, num_processes=3) for r in range(3)]
    chunks = [np.concatenate([ld.next_batch()[0].numpy().reshape(-1) for _ in range(2)])
              for ld in loaders]
    # step 0: ranks take windows 0, 1, 2 of 8 tokens; step 1: windows 3, 4, 5
    for r in range(3):
        np.testing.assert_array_equal(chunks[r][:8], tokens[8 * r:8 * r + 8])
        np.testing.assert_array_equal(chunks[r][8:], tokens[8 * (r + 3):8 * (r + 3) + 8])
    with pytest.raises(ValueError):
        DataLoaderLite(2, 4, path, process_rank=3, num_processes=3)


def test_state_dict_resumes_exactly(tmp_path):
    paths = [_shard(tmp_path, f"s_{i}.bin", np.arange(i * 1000, i * 1000 + 97)) for i in range(3)]
    loader = DataLoaderLite(3, 7, paths)
    for _ in range(6):
        loader.next_batch()
    state = loader.state_dict()
    expected = [loader.next_batch() for _ in range(9)]
    other = DataLoaderLite(3, 7, paths)
    other.load_state_dict(state)
    for x, y in expected:
        x2, y2 = other.next_batch()
        np.testing.assert_array_equal(x.numpy(), x2.numpy())
        np.testing.assert_array_equal(y.numpy(), y2.numpy())
    other.reset()
    np.testing.assert_array_equal(other.next_batch()[0].numpy().reshape(-1), np.arange(21))
    with pytest.raises(ValueError):
        other.load_state_dict({"shard": 5, "position": 0})
    with pytest.raises(ValueError):
        other.load_state_dict(dict(state, files=["x.bin"]))


def test_split_shard_files(tmp_path):
    for name in ("d_val_000000.bin", "d_train_000000.bin", "d_train_000001.bin"):
        _shard(tmp_path, name, np.arange(10))
    train, val = split_shard_files(tmp_path)
    assert [os.path.basename(p) for p in train] == ["d_train_000000.bin", "d_train_000001.bin"]
    assert [os.path.basename(p) for p in val] == ["d_val_000000.bin"]
    with pytest.raises(FileNotFoundError):
        split_shard_files(tmp_path / "nope")
