"""Text in, text out: prompt encoding, GPT.generate and decoding for the training job and
train/sample.py, with the one set of sampling defaults both use."""
import cgad

# train/gpt2.py's closing (and periodic) samples and train/sample.py start from these
DEFAULTS = {"num_samples": 1, "max_new_tokens": 200, "temperature": 1.0, "top_k": 50}


def start_ids(tokenizer, prompt):
    """Token ids to start generating from: the prompt, or without one the end-of-text token
    (GPT-2) or a newline (char-level, the first character when there is no newline)."""
    if prompt:
        return tokenizer.encode(prompt)
    if tokenizer.eot_token is not None:
        return [tokenizer.eot_token]
    return tokenizer.encode("\n") if "\n" in getattr(tokenizer, "stoi", {}) else [0]


def generate_options(temperature, top_k):
    """(temperature, top_k) for GPT.generate from the command lines' meanings: temperature 0 is
    greedy decoding (top-k 1, since generate needs a positive temperature), top_k 0 samples from
    every token. ValueError naming the flag for negative values."""
    if not temperature >= 0:  # NaN too
        raise ValueError(f"--temperature must be >= 0 (0: greedy), got {temperature}")
    if top_k < 0:
        raise ValueError(f"--top-k must be >= 0 (0: every token), got {top_k}")
    if temperature == 0:
        return 1.0, 1
    return temperature, top_k or None


def sample_text(model, tokenizer, prompt=None, num_samples=1, max_new_tokens=200,
                temperature=1.0, top_k=None, device="cpu"):
    """Generate num_samples continuations of `prompt`; returns the texts (prompt included).
    temperature and top_k go to GPT.generate as they are."""
    ids = start_ids(tokenizer, prompt)
    idx = cgad.tensor([ids] * num_samples, dtype=cgad.int64, device=device)
    out = model.generate(idx, max_new_tokens, temperature=temperature, top_k=top_k)
    skip = 0 if prompt else len(ids)  # the implicit start token is not part of the text
    return [tokenizer.decode(row[skip:]) for row in out.tolist()]
