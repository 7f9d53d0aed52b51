"""Every check a run can fail before compute is spent, reported together as one SpecError."""
from __future__ import annotations

from harness.data.corpus import Corpus, CorpusError, data_root, document_mask_errors, resolve_corpus_path
from harness.data.mixture import MixtureStream
from harness.device import machine_errors, runtime_errors
from harness.distributed import setup_errors
from harness.downstream_tasks import task_errors
from harness.spec import RunSpec, Runtime, SpecError


def check(spec: RunSpec, runtime: Runtime, env: dict[str, str] | None = None) -> Corpus:
    """The opened corpus if the run can start; else SpecError naming every problem. env: the rendezvous of a run
    over several processes (harness.distributed.rendezvous_env)."""
    errors = spec.errors() + runtime_errors(runtime) + machine_errors(runtime) + setup_errors(spec, runtime, env or {})
    mbs = runtime.micro_batch_size
    if mbs > 0 and spec.batch_size > 0 and spec.batch_size % mbs:
        errors.append(f"runtime.micro_batch_size={mbs} does not divide the batch of {spec.batch_size} sequences "
                      f"(batch_tokens/seq_len): pick a divisor of {spec.batch_size}")
    corpus = None
    try:
        corpus = Corpus(resolve_corpus_path(spec.data.corpus, data_root()))
    except CorpusError as e:
        errors.append(str(e))
    if corpus is not None:
        errors += corpus_errors(spec, corpus)
    if errors:
        raise SpecError(errors)
    return corpus


def corpus_errors(spec: RunSpec, corpus: Corpus) -> list[str]:
    try:  # the stream checks domain names, stages, and that no epoch cap is exceeded by the run
        stream = MixtureStream(corpus, spec.data, spec.batch_size, spec.model.seq_len, spec.seed,
                               total_tokens=spec.tokens)
    except SpecError as err:
        return list(err.errors)
    except CorpusError as err:
        return [str(err)]
    e = task_errors(spec.eval.downstream, corpus.domains)
    if spec.data.document_mask == "on":
        e += document_mask_errors(corpus)
    if corpus.vocab_size > spec.model.vocab_size:
        e.append(f"model.vocab_size={spec.model.vocab_size} < corpus {corpus.name!r} vocab_size={corpus.vocab_size}: "
                 f"set model.vocab_size >= {corpus.vocab_size}")
    T = spec.model.seq_len
    for d in stream.domains:
        n_held = len(corpus.heldout(d))
        if min(n_held, spec.eval.heldout_tokens) < T + 1:
            e.append(f"eval.heldout_tokens={spec.eval.heldout_tokens} / domain {d!r} held-out split "
                     f"({n_held} tokens): need at least model.seq_len + 1 = {T + 1} for one eval window")
    return e
