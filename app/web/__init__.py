"""The web view: issues by revenue at stake, issues, accounts, product areas, the review queue
and freshness, served by `pmsync serve` or by the daemon when `[web] enabled = true`.

Read-only over the store, except one write: a review decision goes into the overrides file.
"""
