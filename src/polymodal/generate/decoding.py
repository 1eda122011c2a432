"""Writing a caption from a trained decoder: greedy search and beam search, both with a
hard length limit (a hypothesis that reaches it stops there, marked as cut).

Both search under one score, the caption's log-likelihood divided by its length to the
power ``length_penalty`` (0: the plain log-likelihood; GNMT's alpha). Beam search keeps
the greedy caption among its candidates, so its score is never below greedy's on the
same picture (plain beam search can prune the greedy path and end lower).

Every search starts from ``start`` ids (default: ``<bos>`` alone; a question-prompted
caption starts ``<bos>``, the question's words, then the separator) and ends at
``eos``; both are parameters so that a pretrained language model's own ids serve."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from polymodal.generate.tokens import BOS, EOS

#: ``(ids (N, L), memory (N, M, d), padding (N, M)) -> (N, vocab)`` log-probabilities
NextLogProbs = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class Hypothesis:
    """One written caption: its token ids (no ``<bos>`` / ``<eos>``), its
    log-likelihood (the ``<eos>`` included when it was written), and whether decoding
    stopped at the length limit before an ``<eos>``."""

    ids: list[int]
    log_likelihood: float
    cut: bool

    def score(self, length_penalty: float = 0.0) -> float:
        """The search's score: log-likelihood / (tokens written) ** ``length_penalty``."""
        written = len(self.ids) + (0 if self.cut else 1)
        return self.log_likelihood / max(1, written) ** length_penalty


def _check(max_length: int) -> None:
    if max_length < 1:
        raise ValueError(f"max_length must be at least 1 token, got {max_length}")


def _start(start: torch.Tensor | None, n: int, device: torch.device) -> torch.Tensor:
    """(n, P) first ids: ``start`` (one row for all, or one row each), else ``<bos>``."""
    if start is None:
        return torch.full((n, 1), BOS, dtype=torch.long, device=device)
    start = start.to(device=device, dtype=torch.long)
    if start.dim() == 1:
        start = start[None]
    return start.expand(n, -1).clone() if start.shape[0] == 1 else start


@torch.no_grad()
def greedy(step: NextLogProbs, memory: torch.Tensor, padding: torch.Tensor,
           max_length: int, *, start: torch.Tensor | None = None, eos: int = EOS
           ) -> list[Hypothesis]:
    """The most likely next word at each step, for every row of the batch, until
    ``eos`` or ``max_length`` tokens written after ``start``."""
    _check(max_length)
    n = memory.shape[0]
    ids = _start(start, n, memory.device)
    first = ids.shape[1]
    total = torch.zeros(n, device=memory.device)
    done = torch.zeros(n, dtype=torch.bool, device=memory.device)
    ended = torch.zeros(n, dtype=torch.bool, device=memory.device)
    for _ in range(max_length):
        logp = step(ids, memory, padding)
        best, word = logp.max(dim=-1)
        total = total + torch.where(done, torch.zeros_like(best), best)
        word = torch.where(done, torch.full_like(word, eos), word)
        ids = torch.cat([ids, word[:, None]], dim=1)
        ended |= (word == eos) & ~done
        done |= word == eos
        if bool(done.all()):
            break
    out = []
    for i in range(n):
        row = ids[i, first:].tolist()
        words = row[: row.index(eos)] if eos in row else row
        out.append(Hypothesis(words, float(total[i]), cut=not bool(ended[i])))
    return out


@torch.no_grad()
def beam_search(step: NextLogProbs, memory: torch.Tensor, padding: torch.Tensor,
                max_length: int, beam: int = 3, length_penalty: float = 0.0, *,
                start: torch.Tensor | None = None, eos: int = EOS) -> list[Hypothesis]:
    """The best-scoring caption of each row found with ``beam`` hypotheses kept per
    step; a row stops once ``beam`` hypotheses have ended, or at ``max_length``."""
    _check(max_length)
    if beam < 1:
        raise ValueError(f"beam must be at least 1, got {beam}")
    n, device = memory.shape[0], memory.device
    mem = memory.repeat_interleave(beam, dim=0)
    pad = padding.repeat_interleave(beam, dim=0)
    ids = _start(start, n, device).repeat_interleave(beam, dim=0)
    first = ids.shape[1]
    scores = torch.full((n, beam), float("-inf"), device=device)
    scores[:, 0] = 0.0  # one start per row, not `beam` copies of it
    finished: list[list[Hypothesis]] = [[] for _ in range(n)]
    active = [True] * n
    for t in range(max_length):
        logp = step(ids, mem, pad).view(n, beam, -1)
        vocab = logp.shape[-1]
        candidates = (scores[:, :, None] + logp).view(n, -1)
        top, where = candidates.topk(min(2 * beam, candidates.shape[1]), dim=1)
        new_ids = ids.view(n, beam, -1).clone()
        next_ids = torch.full((n, beam), eos, dtype=torch.long, device=device)
        next_scores = torch.full((n, beam), float("-inf"), device=device)
        for row in range(n):
            if not active[row]:
                continue
            kept = 0
            for value, flat in zip(top[row].tolist(), where[row].tolist(), strict=True):
                if value == float("-inf"):
                    break
                origin, word = divmod(flat, vocab)
                prefix = ids.view(n, beam, -1)[row, origin, first:].tolist()
                if word == eos:
                    finished[row].append(Hypothesis(prefix, value, cut=False))
                    continue
                new_ids[row, kept] = ids.view(n, beam, -1)[row, origin]
                next_ids[row, kept], next_scores[row, kept] = word, value
                kept += 1
                if kept == beam:
                    break
            if len(finished[row]) >= beam or kept == 0:
                active[row] = False
        ids = torch.cat([new_ids.view(n * beam, -1), next_ids.view(-1, 1)], dim=1)
        scores = next_scores
        if not any(active):
            break
        if t == max_length - 1:  # the limit: live hypotheses end here, cut
            for row in range(n):
                if active[row]:
                    for b in range(beam):
                        if scores[row, b] > float("-inf"):
                            finished[row].append(Hypothesis(
                                ids.view(n, beam, -1)[row, b, first:].tolist(),
                                float(scores[row, b]), cut=True))
    return [max(f, key=lambda h: h.score(length_penalty)) if f
            else Hypothesis([], float("-inf"), cut=True) for f in finished]


def decode(step: NextLogProbs, memory: torch.Tensor, padding: torch.Tensor,
           max_length: int, beam: int = 1, length_penalty: float = 0.0, *,
           start: torch.Tensor | None = None, eos: int = EOS) -> list[Hypothesis]:
    """Greedy search (``beam=1``) or beam search with the greedy caption kept as a
    candidate, so that a wider beam never scores below greedy; from ``start`` ids
    (default ``<bos>``) to ``eos``."""
    best = greedy(step, memory, padding, max_length, start=start, eos=eos)
    if beam == 1:
        return best
    wide = beam_search(step, memory, padding, max_length, beam, length_penalty,
                       start=start, eos=eos)
    return [w if w.score(length_penalty) >= g.score(length_penalty) else g
            for w, g in zip(wide, best, strict=True)]
