"""A folder of document files (or one file) as a source.

Files are visited in sorted path order; hidden files and folders (``.name``) are
skipped. A symlink whose target lies outside the source folder is refused unless the
spec sets ``source.follow_symlinks``: like a dangling symlink, it is a ``DocumentProblem``
named by its path (quarantined, ``outside_source``), never a reason to stop reading the rest;
a path that leaves the folder through ``..`` can't arise because every path is taken from the
walk, never from input.

Change detection: a file whose size, mtime, ctime and inode all equal what the last
apply recorded is not read again. ``verify`` (``rehash=True``) reads everything.

Poison documents (not UTF-8, empty, over ``source.max_document_bytes``, XML that does
not parse, a JSONL line that is not a document) are reported as ``DocumentProblem``
values, one per file or JSONL line, and the rest of the folder is read as usual.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

from ragstate.errors import (
    DocumentError,
    DocumentTooLarge,
    MalformedDocument,
    MissingExtra,
    OutsideSource,
    PluginError,
    SourceError,
    UnreadableDocument,
    VanishedDocument,
)
from ragstate.sources.base import Document, check_unique_ids
from ragstate.sources.loaders import Limits, RecordError, iter_jsonl, loader, parse_jsonl_record
from ragstate.spec.model import SourceSpec
from ragstate.stores.documents import DocRef, DocumentProblem, FileStat, Snapshot


class FolderSource:
    """Documents from files under one folder, in the formats ``source.formats`` enables
    (``.txt``, ``.md``, JATS ``.xml``, ``.jsonl``, ``.pdf``, ``.html``, ``.docx``, plugins)."""

    def __init__(self, spec: SourceSpec):
        path = Path(spec.path)
        if not path.exists():
            raise SourceError(f"source path {path} does not exist", path=path)
        resolved = path.resolve()
        self._single: str | None = None
        if resolved.is_file():
            self.root, self._single = resolved.parent, resolved.name
        elif resolved.is_dir():
            self.root = resolved
        else:
            raise SourceError(f"source path {path} is neither a folder nor a file", path=path)
        self.formats = frozenset(spec.formats)
        try:
            self.loaders = {name: loader(name) for name in sorted(self.formats)}
        except PluginError as exc:
            raise SourceError(str(exc), path=path) from None
        self._format_of = {suffix: ld.name for ld in self.loaders.values() for suffix in ld.suffixes}
        self._checked: set[str] = set()
        self.limits = Limits(spec.max_document_bytes, spec.max_pages)
        self.follow_symlinks = spec.follow_symlinks
        self.max_document_bytes = spec.max_document_bytes
        self.description = f"folder {path}"

    # --- Source protocol --------------------------------------------------------------

    def snapshot(self, known: Mapping[str, FileStat], *, rehash: bool = False) -> Snapshot:
        skipped: Counter[str] = Counter()
        walked = list(self._walk(skipped))
        files = tuple(stat for stat, _ in walked)
        unchanged = frozenset(f.path for f in files if not rehash and known.get(f.path) == f)
        fresh, problems = self._parse_changed(walked, unchanged)
        return Snapshot(
            files=files,
            unchanged=unchanged,
            fresh=fresh,
            problems=problems,
            skipped=tuple(sorted(skipped.items(), key=lambda item: (-item[1], item[0]))),
        )

    def snapshot_paths(self, known: Mapping[str, FileStat], paths: Iterable[str]) -> Snapshot | None:
        """A snapshot that looks at ``paths`` alone (live mode's change hints, relative POSIX
        paths) and takes every other recorded file as unchanged, with its recorded stat.

        A hinted path that is gone leaves the source (with the recorded files under it, when
        it was a folder). None when the hint cannot be narrowed: a single-file source, or a
        hinted path that is a folder now (moved in whole: observe the source).
        """
        if self._single is not None:
            return None
        wanted: set[str] = set()
        for rel in paths:
            full = self.root / rel
            if full.is_dir():
                return None
            wanted.add(rel)
            if rel not in known and not full.exists():  # a removed folder: its recorded files
                prefix = rel + "/"
                wanted.update(path for path in known if path.startswith(prefix))
        found: list[tuple[FileStat, DocumentError | None]] = []
        for rel in sorted(wanted):
            if any(part.startswith(".") for part in rel.split("/")) or self._format(rel) is None:
                continue
            stat = self._stat(rel)
            if stat is not None:
                found.append(stat)
        stats = {stat.path: stat for stat, _ in found}
        kept = [stat for path, stat in known.items() if path not in wanted]
        files = tuple(sorted([*kept, *stats.values()], key=lambda f: f.path))
        unchanged = frozenset([f.path for f in kept] + [p for p, stat in stats.items() if known.get(p) == stat])
        fresh, problems = self._parse_changed(found, unchanged)
        return Snapshot(files=files, unchanged=unchanged, fresh=fresh, problems=problems)

    def _parse_changed(
        self, found: Iterable[tuple[FileStat, DocumentError | None]], unchanged: frozenset[str]
    ) -> tuple[tuple[DocRef, ...], tuple[DocumentProblem, ...]]:
        """Parse the files found that changed: their documents' refs, and the problems of
        files refused or documents that would not parse (ids checked unique across them)."""
        fresh: list[DocRef] = []
        problems: list[DocumentProblem] = []
        for stat, refused in found:
            if stat.path in unchanged:
                continue
            if refused is not None:
                problems.append(DocumentProblem.of(stat.path, refused, stat))
            else:
                docs, errors = self._parse(stat.path)
                fresh.extend(doc.ref() for doc in docs)
                problems.extend(DocumentProblem.of(key, error, stat) for key, error in errors)
        check_unique_ids(fresh)
        return tuple(fresh), tuple(problems)

    def load(self, refs: Sequence[DocRef]) -> Iterator[Document]:
        by_path: dict[str, list[DocRef]] = defaultdict(list)
        for ref in refs:
            by_path[ref.path].append(ref)
        loaded: dict[str, Document] = {}
        for path, group in by_path.items():
            if self._format(path) == "jsonl":
                loaded.update((d.doc_id, d) for d in self._load_jsonl(path, group))
            else:
                for doc in self._read_file(path):
                    loaded[doc.doc_id] = doc
        for ref in refs:
            doc = loaded.get(ref.doc_id)
            if doc is None:
                raise VanishedDocument(
                    f"document '{ref.doc_id}' is no longer in {ref.path}", path=ref.path, doc_id=ref.doc_id
                )
            yield doc

    # --- internals --------------------------------------------------------------------

    def _format(self, rel: str) -> str | None:
        fmt = self._format_of.get(os.path.splitext(rel)[1].lower())
        if fmt is not None and fmt not in self._checked:
            self._require(fmt, rel)
        return fmt

    def _require(self, fmt: str, rel: str) -> None:
        """Refuse a file whose format's optional dependency is missing, naming the extra."""
        ld = self.loaders[fmt]
        module = ld.missing()
        if module is not None:
            install = f"pip install 'ragstate[{ld.extra}]'" if ld.extra else f"install the Python module {module}"
            raise MissingExtra(
                f"{rel}: reading .{fmt} files needs the Python module '{module}', which is not installed; "
                f"{install}, or remove '{fmt}' from source.formats",
                path=self.root / rel,
            )
        self._checked.add(fmt)

    def _walk(self, skipped: Counter[str]) -> Iterator[tuple[FileStat, DocumentError | None]]:
        """Each file (or refused folder link) in order, with the error that keeps it from being
        read (a symlink leading outside, a dangling one), None for a file to parse; files of
        no format read are counted in ``skipped`` by extension."""
        if self._single is not None:
            if self._format(self._single) is None:
                raise SourceError(
                    f"source file {self.root / self._single} is not one of the formats {sorted(self.formats)}",
                    path=self.root / self._single,
                )
            found = self._stat(self._single)
            if found is not None:
                yield found
            return
        seen_dirs: set[str] = set()
        for dirpath, dirnames, filenames in os.walk(self.root, followlinks=self.follow_symlinks):
            real = os.path.realpath(dirpath)
            if real in seen_dirs:  # a symlink loop, followed once already
                dirnames[:] = []
                continue
            seen_dirs.add(real)
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            entries = [(d, True) for d in dirnames] + [(f, False) for f in filenames if not f.startswith(".")]
            for name, is_dir in sorted(entries):
                rel = Path(os.path.relpath(os.path.join(dirpath, name), self.root)).as_posix()
                if is_dir:
                    refused = None if self.follow_symlinks else self._outside(rel)
                    if refused is not None:  # not walked into; named like a file so it is quarantined
                        dirnames.remove(name)
                        found = self._stat(rel, refused)
                        if found is not None:
                            yield found
                elif self._format(rel) is None:
                    skipped[os.path.splitext(name)[1].lower() or "(no extension)"] += 1
                else:
                    found = self._stat(rel)
                    if found is not None:
                        yield found

    def _outside(self, rel: str) -> OutsideSource | None:
        """The error refusing ``rel`` when it is a symlink leading outside the source folder."""
        full = self.root / rel
        if not full.is_symlink():
            return None
        target = Path(os.path.realpath(full))
        if target.is_relative_to(self.root):
            return None
        return OutsideSource(
            f"{rel} is a symlink to {target}, outside the source folder {self.root}; "
            "set source.follow_symlinks: true to read it",
            path=rel,
            doc_id=rel if self._format(rel) not in (None, "jsonl") else None,
        )

    def _stat(self, rel: str, refused: DocumentError | None = None) -> tuple[FileStat, DocumentError | None] | None:
        """``rel``'s stat and the error refusing it; None when it vanished during the walk.

        A refused or dangling symlink is stat'ed itself (``lstat``): its entry then changes
        when the link is replaced, and the file is tried again."""
        full = self.root / rel
        if refused is None and not self.follow_symlinks:
            refused = self._outside(rel)
        try:
            st = os.lstat(full) if refused is not None else os.stat(full)
        except OSError as exc:
            try:
                st = os.lstat(full)
            except OSError:
                return None  # deleted since the walk listed it: simply not in the source
            target = os.readlink(full) if full.is_symlink() else None
            what = f"a symlink to {target} that cannot be read" if target is not None else "cannot be read"
            refused = UnreadableDocument(f"{rel}: {what}: {exc.strerror}", path=rel, doc_id=rel)
            if self._format(rel) in (None, "jsonl"):
                refused.doc_id = None
        stat = FileStat(path=rel, size=st.st_size, mtime_ns=st.st_mtime_ns, ctime_ns=st.st_ctime_ns, inode=st.st_ino)
        return stat, refused

    def _parse(self, rel: str) -> tuple[list[Document], list[tuple[str, DocumentError]]]:
        """The documents of file ``rel``, and the error of each that cannot be read.

        Errors are keyed by the file's path, or ``path:line`` for a JSONL record; the
        document id of a one-document file is its path, so its error names it too.
        """
        fmt = self._format(rel)
        full = self.root / rel
        try:
            outside = None if self.follow_symlinks else self._outside(rel)
            if outside is not None:  # replaced by a symlink since the walk: still never read
                raise outside
            if fmt == "jsonl":
                docs: list[Document] = []
                errors: list[tuple[str, DocumentError]] = []
                with open(full, "rb") as stream:
                    for item in iter_jsonl(stream, rel, max_record_bytes=self.max_document_bytes):
                        if isinstance(item, RecordError):
                            errors.append((f"{rel}:{item.line}", item.error))
                        else:
                            docs.append(item)
                return docs, errors
            size = os.path.getsize(full)
            if size > self.max_document_bytes:
                raise DocumentTooLarge(
                    f"{rel}: document is {size} bytes; the limit (source.max_document_bytes) is "
                    f"{self.max_document_bytes}",
                    path=rel,
                )
            with open(full, "rb") as f:
                data = f.read()
            assert fmt is not None
            return self._read(fmt, data, rel), []
        except OSError as exc:
            error: DocumentError = UnreadableDocument(f"{rel}: cannot read: {exc.strerror}", path=rel)
        except DocumentError as exc:
            error = exc
        if error.doc_id is None and fmt != "jsonl":
            error.doc_id = rel
        return [], [(rel, error)]

    def _read(self, fmt: str, data: bytes, rel: str) -> list[Document]:
        try:
            return self.loaders[fmt].read(data, rel, self.limits)
        except DocumentError:
            raise
        except RecursionError:
            raise MalformedDocument(f"{rel}: nested too deeply to read", path=rel) from None
        except Exception as exc:  # a loader (a plugin's too) must not stop the other documents
            raise MalformedDocument(
                f"{rel}: the {fmt} loader cannot read it ({type(exc).__name__}: {exc})", path=rel
            ) from None

    def _read_file(self, rel: str) -> list[Document]:
        """The readable documents of ``rel``; a one-document file that cannot be read raises
        (``VanishedDocument`` when it was deleted since it was observed)."""
        if not os.path.lexists(self.root / rel):
            raise VanishedDocument(f"{rel}: deleted from the source during the run", path=rel, doc_id=rel)
        docs, errors = self._parse(rel)
        if errors and self._format(rel) != "jsonl":
            raise errors[0][1]
        return docs

    def _load_jsonl(self, rel: str, refs: list[DocRef]) -> list[Document]:
        docs: list[Document] = []
        try:
            with open(self.root / rel, "rb") as f:
                for ref in refs:
                    f.seek(ref.offset)
                    raw = f.readline(self.max_document_bytes + 1)
                    doc = (
                        parse_jsonl_record(raw, rel, f"@{ref.offset}", pos=ref.pos, offset=ref.offset)
                        if raw.strip()
                        else None
                    )
                    if doc is None or doc.doc_id != ref.doc_id:
                        # The file was rewritten since it was observed: find the record anew.
                        return [d for d in self._read_file(rel) if d.doc_id in {r.doc_id for r in refs}]
                    docs.append(doc)
        except FileNotFoundError:
            raise VanishedDocument(f"{rel}: deleted from the source during the run", path=rel) from None
        except OSError as exc:
            raise UnreadableDocument(f"{rel}: cannot read: {exc.strerror}", path=rel) from None
        except DocumentError:
            return [d for d in self._read_file(rel) if d.doc_id in {r.doc_id for r in refs}]
        return docs
