"""Upstream: the city reports every dossier to the national public service portal (DVCQG).

Boxes never talk upstream; the city does, from its own log (docs/decisions/0011)::

    fold (replica transaction)  ->  upstream_outbox in motcua.db   (outbox.py: one row per
                                                                    (dossier, op), coalesced)
    sender (sender.py)          ->  upstream.db: queue, what the portal holds, receipts
                                    (store.py, receipts.py)
    adapter (dvcqg.py, lgsp.py) ->  the portal's HTTP shape, behind adapter.Adapter
    mapping.py                  ->  a dossier's state as the portal's record (pure)
    simulator.py                ->  a portal for tests and the demo
"""
