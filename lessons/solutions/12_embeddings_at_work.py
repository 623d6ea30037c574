def flip_invariant_hamming(a, b):
    h = phash(a)
    return int(min(np.sum(h != phash(b)), np.sum(h != phash(np.ascontiguousarray(b[:, :, ::-1])))))
