"""One writer per file: writes from many threads never share a transaction."""

import threading

from toydoc import DOC

from sync import feed
from sync.fold import Rejected
from sync.identity import Identity
from sync.replica import Replica


def test_concurrent_writes_from_threads_each_commit_alone(tmp_path):
    replica = Replica(tmp_path / "r.db", Identity.generate("31135"), [DOC])
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def clerk(n: int) -> None:
        try:
            barrier.wait()
            for i in range(25):
                with replica.write() as w:
                    w.append("doc", f"{n}-{i}", "create", {"title": f"t{n}"})
                    # A failing write of one thread must not take another thread's op with it.
                    if i % 5 == 0:
                        try:
                            with replica.write() as inner:
                                inner.append("doc", f"{n}-{i}", "create", {"title": "again"})
                        except Rejected:
                            pass
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=clerk, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert replica.vector()[replica.identity.node] == 100
    assert len(replica.states("doc")) == 100
    assert all(s["title"].startswith("t") for s in replica.states("doc").values())
    replica.close()


def test_a_local_write_does_not_wait_for_a_scope_digest(tmp_path, monkeypatch):
    """Anti-entropy hashes every op of a scope (seconds for a commune's year of work); a clerk's
    write meanwhile must not queue behind it (bench/edge_soak.py found receives stalled)."""
    replica = Replica(tmp_path / "r.db", Identity.generate("31135"), [DOC])
    inside, release = threading.Event(), threading.Event()
    real = feed.scope_digest

    def slow_digest(conn, keys, **options):
        inside.set()
        release.wait(30)
        return real(conn, keys, **options)

    monkeypatch.setattr(feed, "scope_digest", slow_digest)
    digests: list[bytes] = []
    digesting = threading.Thread(target=lambda: digests.append(replica.scope_digest({"31135"})))
    digesting.start()
    assert inside.wait(10)

    def write() -> None:
        with replica.write() as w:
            w.append("doc", "d1", "create", {"title": "while hashing"})

    writing = threading.Thread(target=write)
    writing.start()
    writing.join(10)
    done_while_hashing = not writing.is_alive()
    release.set()
    digesting.join()
    writing.join()
    assert done_while_hashing, "the write waited for the digest"
    assert replica.vector()[replica.identity.node] == 1
    assert len(digests) == 1
    replica.close()
