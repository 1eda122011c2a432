"""Multimodal recommendation on tuxpaint's stamps with simulated users.

    python examples/recommend_tuxpaint.py [--users 400] [--limit 3]

Each stamp is embedded from its picture and its caption by `builtin:lit-tuxpaint`;
simulated users like stamps of one or two categories. Three quarters of the users train
the two towers and the popularity counts; the rest are evaluated leave-one-out
(HitRate@10, NDCG@10) for popularity, content-based and two-tower recommendations.
Then one user's history and recommendations are printed.
"""

from __future__ import annotations

import argparse

import numpy as np

from polymodal import Manifest
from polymodal.apps import Recommender, simulate_users
from polymodal.data.bundled import make_dataset
from polymodal.library.builtin import builtin_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=400)
    parser.add_argument("--limit", type=int, default=None, help="a small catalogue")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    items = Manifest.read(make_dataset("tuxpaint", limit=args.limit))
    model = builtin_model("lit-tuxpaint", quick=args.limit is not None)
    likes = simulate_users(items, n_users=args.users, seed=args.seed)
    users = likes["user"].unique()
    held = set(np.random.default_rng(args.seed).choice(users, len(users) // 4, replace=False))
    train, test = likes[~likes.user.isin(held)], likes[likes.user.isin(held)]

    rec = Recommender(model, seed=args.seed).fit(items, interactions=train)
    for method in ("popularity", "content", "two-tower"):
        scores = rec.evaluate(test, k=10, method=method)
        print(f"{method:>10}: " + ", ".join(f"{k} {v:.3f}" for k, v in scores.items()))

    user = sorted(held)[0]
    history = test[test.user == user]["item"].tolist()
    captions = dict(zip(items.ids(), items.table["caption"].fillna(""), strict=True))
    print(f"\nuser {user} liked: " + "; ".join(f"{i} ({captions[i]})" for i in history))
    top = rec.recommend(history, k=5, method="two-tower")
    print("recommended:\n" + "\n".join(f"  {r.score:.3f}  {r.item}  ({captions[r.item]})"
                                       for r in top.itertuples()))


if __name__ == "__main__":
    main()
