"""DataLoader: every image once per epoch, drop_last, per-epoch shuffling from a seed,
prefetching in a background thread with the same batches, and clean shutdown."""

import threading
import time

import numpy as np
import pytest

import minicon
from minicon.augment import ColorJitter, Compose, RandomResizedCrop, ToFloat
from minicon.data import DataLoader

N = 10


def dataset(n=N):
    images = np.arange(n, dtype=np.uint8).repeat(3 * 4 * 4).reshape(n, 3, 4, 4)
    return images, np.arange(n, dtype=np.int64)


def epochs(loader, count=2):
    return [list(loader) for _ in range(count)]


def prefetch_threads():
    return [t for t in threading.enumerate() if t.name == "minicon-prefetch"]


def wait_until_no_prefetch_thread(seconds=2.0):
    deadline = time.monotonic() + seconds
    while prefetch_threads() and time.monotonic() < deadline:
        time.sleep(0.01)
    return prefetch_threads()


@pytest.mark.parametrize("prefetch", [False, True])
def test_each_epoch_visits_every_image_once_and_images_match_labels(prefetch):
    images, labels = dataset()
    loader = DataLoader(images, labels, 4, seed=0, drop_last=False, prefetch=prefetch)
    assert len(loader) == 3
    for batches in epochs(loader):
        assert [len(y) for _, y in batches] == [4, 4, 2]
        seen = np.concatenate([y for _, y in batches])
        assert sorted(seen) == list(range(N))
        for x, y in batches:
            np.testing.assert_array_equal(x[:, 0, 0, 0], y)  # image i holds the value i


def test_drop_last_skips_the_short_batch():
    loader = DataLoader(*dataset(), 4, seed=0, drop_last=True)
    assert len(loader) == 2
    assert [len(y) for _, y in loader] == [4, 4]


def test_shuffle_changes_per_epoch_and_repeats_from_the_seed():
    images, labels = dataset(64)
    first = [np.concatenate([y for _, y in e]) for e in epochs(DataLoader(images, labels, 8, seed=3), 3)]
    again = [np.concatenate([y for _, y in e]) for e in epochs(DataLoader(images, labels, 8, seed=3), 3)]
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], first[1]) and not np.array_equal(first[1], first[2])
    resumed = DataLoader(images, labels, 8, seed=3)
    resumed.set_epoch(2)
    np.testing.assert_array_equal(np.concatenate([y for _, y in resumed]), first[2])
    other = np.concatenate([y for _, y in DataLoader(images, labels, 8, seed=4)])
    assert not np.array_equal(other, first[0])
    ordered = np.concatenate([y for _, y in DataLoader(images, labels, 8, shuffle=False)])
    np.testing.assert_array_equal(ordered, np.arange(64))


def test_default_seed_comes_from_manual_seed():
    images, labels = dataset(64)
    minicon.manual_seed(11)
    a = [y for _, y in DataLoader(images, labels, 8)]
    minicon.manual_seed(11)
    b = [y for _, y in DataLoader(images, labels, 8)]
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def test_prefetched_augmented_batches_equal_the_serial_ones_and_run_in_the_background():
    images = np.random.default_rng(0).integers(0, 256, (40, 3, 8, 8), dtype=np.uint8)
    labels = np.arange(40)
    threads = []

    def record_thread(x, generator=None):
        threads.append(threading.current_thread().name)
        return x

    transform = Compose([ToFloat(), RandomResizedCrop(8), ColorJitter(0.4, 0.4, 0.4, 0.1), record_thread])
    serial = epochs(DataLoader(images, labels, 8, seed=5, transform=transform, prefetch=False))
    assert set(threads) == {threading.current_thread().name}
    threads.clear()
    background = epochs(DataLoader(images, labels, 8, seed=5, transform=transform, prefetch=True))
    assert set(threads) == {"minicon-prefetch"}
    for epoch_serial, epoch_background in zip(serial, background):
        for (xs, ys), (xb, yb) in zip(epoch_serial, epoch_background):
            np.testing.assert_array_equal(xs, xb)
            np.testing.assert_array_equal(ys, yb)
    assert not np.array_equal(serial[0][0][0], serial[1][0][0])  # new augmentations each epoch


def test_breaking_out_early_stops_the_background_thread():
    loader = DataLoader(*dataset(100), 2, seed=0)
    for _ in loader:
        break
    assert wait_until_no_prefetch_thread() == []
    iterator = iter(loader)
    next(iterator)
    iterator.close()
    assert prefetch_threads() == []  # close() joins the thread


def test_an_error_while_preparing_a_batch_reaches_the_caller():
    def failing(x, generator=None):
        raise RuntimeError("augmentation failed on purpose")

    with pytest.raises(RuntimeError, match="augmentation failed on purpose"):
        for _ in DataLoader(*dataset(), 2, seed=0, transform=failing):
            pass
    assert wait_until_no_prefetch_thread() == []


def test_an_error_in_the_training_loop_stops_the_thread():
    with pytest.raises(KeyError):
        for _ in DataLoader(*dataset(100), 2, seed=0):
            raise KeyError("loss was NaN")
    assert wait_until_no_prefetch_thread() == []


def test_bad_arguments():
    images, labels = dataset()
    with pytest.raises(ValueError, match="images and labels differ in length: 10 and 9"):
        DataLoader(images, labels[:9], 2)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        DataLoader(images, labels, 0)
    with pytest.raises(ValueError, match="no batch would be produced"):
        DataLoader(images, labels, 11, drop_last=True)


def test_resuming_mid_epoch_gives_the_same_augmented_batches():
    images, labels = dataset(64)

    def noisy(x, generator):
        return x + generator.standard_normal(x.shape)

    whole = DataLoader(images, labels, 8, seed=5, transform=noisy)
    whole.set_epoch(1)
    full = [x for x, _ in whole]
    resumed = DataLoader(images, labels, 8, seed=5, transform=noisy)
    resumed.set_epoch(1, start_batch=5)
    tail = [x for x, _ in resumed]
    assert len(tail) == len(full) - 5
    for a, b in zip(full[5:], tail):
        np.testing.assert_array_equal(a, b)
    assert [len(list(resumed))] == [8]  # the next epoch starts at batch 0 again
    with pytest.raises(ValueError, match="start_batch must be in"):
        resumed.set_epoch(0, start_batch=8)
