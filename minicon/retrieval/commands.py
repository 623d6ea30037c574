"""``minicon embed``, ``minicon search`` and ``minicon dedup``: the command-line side of :mod:`minicon.retrieval`.

Each ``run_*`` takes the parsed arguments, prints its result (a summary line
for embed, JSON for search and dedup) and returns the exit status; a mistake
is a ``ValueError`` with one line naming the file or flag,
which :func:`minicon.cli.main` prints as ``minicon: error: ...``.
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

import numpy

from ..files import check_writable, write_atomic
from .index import Index

GRID_TOP = 8  # groups (dedup) drawn in the grid, and members per group


def _check_writable(path, flag: str) -> None:
    """Fail before minutes of work, not after, when ``path`` cannot be written."""
    why = check_writable(path)
    if why:
        raise ValueError(f"{flag} {path}: cannot be written ({why}); nothing was written")


def _save_figure(fig, path) -> None:
    write_atomic(path, lambda f: fig.savefig(f, format="png", dpi=150))


def _class(index: Index, label: int):
    names = index.meta.get("class_names") or []
    return names[label] if 0 <= label < len(names) else None


def _row(index: Index, row: int, **extra) -> dict:
    label = int(index.labels[row])
    return {"row": int(row), "source": index.rows[row], "label": label if label >= 0 else None,
            "class": _class(index, label), **extra}


def run_embed(args) -> int:
    _check_writable(args.out, "--out")
    start = time.perf_counter()
    index = Index.build(args.run, args.images, projected=args.projected, checkpoint=args.checkpoint,
                        data_dir=args.data_dir, batch_size=args.batch_size)
    index.save(args.out)
    seconds = time.perf_counter() - start
    print(f"embedded {len(index)} image{'s' if len(index) != 1 else ''} of {args.images} with {args.run} ({args.checkpoint}.npz, "
          f"{index.meta['method']}, feature {index.meta['feature']}, D = {index.dim}) into {args.out} "
          f"in {seconds:.1f} s")
    return 0


def _parse_query(index: Index, text: str, run_dir):
    """``(query vector (1, D), description dict, row to leave out or None)`` of ``--query``."""
    if re.fullmatch(r"[+-]?\d+", text.strip()):
        row = int(text)
        if not 0 <= row < len(index):
            raise ValueError(f"--query {text}: row out of range; the index has rows 0 to {len(index) - 1}")
        return index.features[row:row + 1], _row(index, row), row
    path = Path(text)
    if not path.is_file():
        raise ValueError(f"--query {text}: neither a row number of the index nor an existing file")
    if path.suffix.lower() == ".npy":
        try:
            vector = numpy.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise ValueError(f"--query {path}: not a readable .npy array ({exc})") from None
        if vector.ndim != 1 or vector.shape[0] != index.dim or vector.dtype.kind not in "fiu":
            raise ValueError(f"--query {path}: a query of the wrong size: shape {vector.shape} {vector.dtype}, "
                            f"expected {index.dim} numbers (the index's D)")
        return vector[None], {"embedding": str(path)}, None
    from .sources import read_image

    picture = read_image(path)[None]
    return index.embed_images(picture, run_dir), {"image": str(path), "_picture": picture}, None


def run_search(args) -> int:
    if args.grid:
        _check_writable(args.grid, "--grid")
    index = Index.load(args.index)
    k = args.k
    if args.text is not None:
        if k > len(index):
            raise ValueError(f"--k {k} is more than the {len(index)} rows of {args.index}")
        scores, indices, unknown = index.search_text([args.text], k, run_dir=args.run, engine=args.engine)
        query = {"text": args.text, "unknown_words": unknown[0]}
        leave_out = None
    else:
        if args.run:  # a row or a vector needs no model, but a --run given must still be the index's
            index.check_run(args.run)
        vector, query, leave_out = _parse_query(index, args.query, args.run)
        limit = len(index) - (leave_out is not None)
        if k > limit:
            other = " other" if leave_out is not None else ""
            raise ValueError(f"--k {k} is more than the {limit}{other} rows of {args.index}")
        scores, indices = index.search(vector, k + (leave_out is not None), engine=args.engine)
    pairs = [(int(i), float(s)) for i, s in zip(indices[0], scores[0]) if int(i) != leave_out and int(i) >= 0][:k]
    results = [_row(index, i, rank=rank, similarity=round(s, 6)) for rank, (i, s) in enumerate(pairs, start=1)]
    picture = query.pop("_picture", None)
    if args.grid:
        _search_grid(index, args, query, results, picture, leave_out)
    report = {"index": str(args.index), "engine": args.engine, "k": k, "query": query,
              "excluded_query_row": leave_out is not None, "results": results}
    print(json.dumps(report, indent=2))
    return 0


def _caption(result: dict) -> str:
    what = result["class"] or Path(result["source"]).name[:14]
    return f"{what}\n{result['similarity']:.3f}"


def _search_grid(index, args, query, results, picture, leave_out) -> None:
    from ..plots import image_rows

    shown = index.images([r["row"] for r in results], args.data_dir)
    if "text" in query:
        fig = image_rows([shown], row_titles=[f'"{args.text}"'], captions=[[_caption(r) for r in results]])
    else:
        if picture is None and leave_out is not None:
            picture = index.images([leave_out], args.data_dir)
        if picture is None:  # an embedding file has no picture
            fig = image_rows([shown], row_titles=["query"], captions=[[_caption(r) for r in results]])
        else:
            label = _class(index, int(index.labels[leave_out])) if leave_out is not None else None
            fig = image_rows([numpy.concatenate([picture, shown])], query_column=True,
                             captions=[[f"query\n{label or ''}"] + [_caption(r) for r in results]])
    _save_figure(fig, args.grid)
    print(f"saved {args.grid}", file=sys.stderr)


def run_dedup(args) -> int:
    from .dedup import auto_threshold, near_duplicates

    if args.threshold is not None and not -1.0 <= args.threshold <= 1.0:
        raise ValueError(f"--threshold {args.threshold}: must be in [-1, 1] (a cosine similarity)")
    if args.grid:
        _check_writable(args.grid, "--grid")
    index = Index.load(args.index)
    how = None
    if args.auto:
        if len(index) < 2:
            raise ValueError(f"--auto: {args.index} has {len(index)} row; it needs at least 2")
        threshold, how = auto_threshold(index.features)
    else:
        threshold = args.threshold
    try:
        groups, pairs, scores = near_duplicates(index.features, threshold, max_pairs=args.max_pairs)
    except ValueError as exc:
        raise ValueError(f"--threshold {threshold:.4f}: {exc}") from None
    report = {"index": str(args.index), "threshold": threshold, "how": how or f"--threshold {threshold}",
              "rows": len(index), "pairs": int(len(pairs)), "groups": len(groups),
              "rows_in_groups": int(sum(len(g) for g in groups)),
              "largest_first": [{"size": len(g), "members": [_row(index, int(r)) for r in g]} for g in groups]}
    if args.grid:
        if not groups:
            print(f"no group at threshold {threshold:.4f}: no grid written", file=sys.stderr)
        else:
            from ..plots import image_rows

            top = [g[:GRID_TOP] for g in groups[:GRID_TOP]]
            pictures = index.images(numpy.concatenate(top), args.data_dir)
            rows, start = [], 0
            for g in top:
                rows.append(pictures[start:start + len(g)])
                start += len(g)
            captions = [[(_class(index, int(index.labels[r])) or Path(index.rows[r]).name[:14]) + f"\n#{r}"
                         for r in g] for g in top]
            titles = [f"{len(g)} rows" for g in groups[:GRID_TOP]]
            _save_figure(image_rows(rows, row_titles=titles, captions=captions), args.grid)
            print(f"saved {args.grid}", file=sys.stderr)
    print(json.dumps(report, indent=2))
    return 0


def add_parsers(sub, positive_int, with_backend) -> None:
    """Register ``embed``, ``search`` and ``dedup`` on the ``minicon`` command's subparsers."""
    from .index import ENGINES
    from .sources import CIFAR_SOURCES

    p = with_backend("embed", help="embed images with a trained run into an index file (.npz)")
    p.add_argument("run", help="run folder of minicon train")
    p.add_argument("--images", required=True, metavar="SRC",
                   help=f"{' | '.join(CIFAR_SOURCES)} | a folder of PNG/JPEG files (resized to 32x32)")
    p.add_argument("--out", required=True, help="index file to write (e.g. index.npz), atomically")
    p.add_argument("--projected", action="store_true",
                   help="the method's projections z (CLIP: the image-text space) instead of encoder features h")
    p.add_argument("--checkpoint", choices=("last", "best"), default="last")
    p.add_argument("--batch-size", type=positive_int, default=512, help="images per forward pass")
    p.add_argument("--data-dir", help="CIFAR folder (default: MINICON_DATA_DIR or the run's)")
    p.set_defaults(func=run_embed)

    p = with_backend("search", help="the rows of an index most similar to an image, a row or a text")
    p.add_argument("index", help="index file of minicon embed")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--query", metavar="IMAGE_OR_ROW",
                      help="a row number of the index, an image file (PNG/JPEG), or a .npy embedding")
    what.add_argument("--text", help='a caption, e.g. "a photo of a ship" (CLIP runs only)')
    p.add_argument("--k", type=positive_int, default=10, help="results (default 10)")
    p.add_argument("--engine", choices=ENGINES, default="exact",
                   help="exact: blocked GEMMs (default); faiss: FAISS flat, same results; faiss-ivf: approximate")
    p.add_argument("--run", help="where the index's run is now (default: the path recorded in the index)")
    p.add_argument("--grid", metavar="PNG", help="also draw the query and its results")
    p.add_argument("--data-dir", help="CIFAR folder, for the grid's pictures")
    p.set_defaults(func=run_search)

    p = with_backend("dedup", help="groups of near-duplicate rows of an index (union-find over similar pairs)")
    p.add_argument("index", help="index file of minicon embed")
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--threshold", type=float, metavar="S", help="cosine similarity in [-1, 1]: pairs at least S")
    how.add_argument("--auto", action="store_true",
                     help="pick S from the index: nearest-neighbour distances 3 robust std below their median (log scale)")
    p.add_argument("--grid", metavar="PNG", help=f"also draw the {GRID_TOP} largest groups")
    p.add_argument("--max-pairs", type=positive_int, default=5_000_000,
                   help="refuse a threshold that finds more pairs than this (default 5,000,000)")
    p.add_argument("--data-dir", help="CIFAR folder, for the grid's pictures")
    p.set_defaults(func=run_dedup)
