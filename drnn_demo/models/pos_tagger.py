"""The paper's part-of-speech tagger: word embedding + character encoder, then a sentence RNN.

.. math::
    e_t = [\\,E_w[w_t]\\,;\\ \\mathrm{BiLSTM}_c(c_{t,1..m})\\,],\\qquad
    h = \\mathrm{RNN}(e_1 .. e_L),\\qquad \\hat y_t = W h_t + b

The character encoder reads each word on its own (its two final states, concatenated), so it
looks at no other word. The sentence RNN is a :class:`~drnn_demo.models.DelayedRNN` (LSTM, word
delay ``d``: the tag of word ``t`` is read after word ``t + d``) or a bidirectional LSTM (run on
packed sequences, so padding never reaches a real word). Padded word positions enter the delayed
RNN as zero vectors, exactly the zeros it appends after the last word itself, so a padded batch
tags every sentence as it would alone.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .common import check_choice, check_non_negative_int, check_positive_int
from .delayed import DelayedRNN

SENTENCE_RNNS = ("delayed", "bidirectional")


class POSTagger(nn.Module):
    """Tag every word of padded sentences.

    Args:
        words, chars, tags: vocabulary sizes (index 0 is padding in ``words`` and ``chars``).
        sentence_rnn: "delayed" or "bidirectional"; ``delay``: the word delay of "delayed".
        hidden: sentence RNN units (per direction for "bidirectional").
        word_dim, char_dim, char_hidden: embedding sizes and the character LSTM's units per direction.

    Shapes:
        - word_ids: ``(B, L)`` long, 0 = padding
        - char_ids: ``(B, L, M)`` long, 0 = padding
        - lengths: ``(B,)`` long, words per sentence
        - output: ``(B, L, tags)`` logits (rows beyond a sentence's length are meaningless)
    """

    def __init__(self, words: int, chars: int, tags: int, sentence_rnn: str = "delayed", delay: int = 0,
                 hidden: int = 128, word_dim: int = 64, char_dim: int = 16, char_hidden: int = 32):
        super().__init__()
        for name, value in (("words", words), ("chars", chars), ("tags", tags), ("hidden", hidden),
                            ("word_dim", word_dim), ("char_dim", char_dim), ("char_hidden", char_hidden)):
            check_positive_int(name, value)
        check_choice("sentence_rnn", sentence_rnn, SENTENCE_RNNS)
        check_non_negative_int("delay", delay)
        self.config = dict(words=words, chars=chars, tags=tags, sentence_rnn=sentence_rnn, delay=delay,
                           hidden=hidden, word_dim=word_dim, char_dim=char_dim, char_hidden=char_hidden)
        self.word_embedding = nn.Embedding(words, word_dim, padding_idx=0)
        self.char_embedding = nn.Embedding(chars, char_dim, padding_idx=0)
        self.char_rnn = nn.LSTM(char_dim, char_hidden, batch_first=True, bidirectional=True)
        features = word_dim + 2 * char_hidden
        if sentence_rnn == "delayed":
            self.sentence = DelayedRNN(features, hidden, delay=delay, cell="lstm", batch_first=True)
            out = hidden
        else:
            self.sentence = nn.LSTM(features, hidden, batch_first=True, bidirectional=True)
            out = 2 * hidden
        self.head = nn.Linear(out, tags)

    def word_vectors(self, word_ids: torch.Tensor, char_ids: torch.Tensor) -> torch.Tensor:
        """``(B, L, word_dim + 2 char_hidden)``: each word's embedding and character encoding, 0 at padding."""
        B, L, M = char_ids.shape
        flat = char_ids.reshape(B * L, M)
        char_lengths = (flat != 0).sum(1)
        real = char_lengths > 0
        encoded = flat.new_zeros(B * L, 2 * self.char_rnn.hidden_size, dtype=self.char_embedding.weight.dtype)
        if bool(real.any()):
            packed = pack_padded_sequence(self.char_embedding(flat[real]), char_lengths[real].cpu(), batch_first=True,
                                          enforce_sorted=False)
            _, (h_n, _) = self.char_rnn(packed)
            encoded[real] = torch.cat([h_n[0], h_n[1]], dim=-1)
        vectors = torch.cat([self.word_embedding(word_ids), encoded.reshape(B, L, -1)], dim=-1)
        return vectors * (word_ids != 0).unsqueeze(-1)

    def forward(self, word_ids: torch.Tensor, char_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x = self.word_vectors(word_ids, char_ids)
        if self.config["sentence_rnn"] == "delayed":
            h, _ = self.sentence(x)
        else:
            packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
            h, _ = pad_packed_sequence(self.sentence(packed)[0], batch_first=True, total_length=x.shape[1])
        return self.head(h)
