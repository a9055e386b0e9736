"""Knowledge distillation: a small language model (the student) trained to match a larger one's (the teacher's)
next-token distributions, not only the tokens of the text.

At each position the text says which token came next; the teacher says how likely every token was.
With both distributions softened by a temperature tau, p = softmax(z / tau) for logits z, the
student minimises

    L = (1 - lambda) CE(y, p_S) + lambda tau^2 KL(p_T || p_S),     KL(p || q) = sum_v p_v (ln p_v - ln q_v)

summed over the predicted positions (Hinton, Vinyals and Dean, 2015, "Distilling the Knowledge in a
Neural Network", arXiv:1503.02531). lambda = 0 is training on the data alone; lambda = 1 on the teacher
alone. The gradient of the KL term with respect to the student's logits is (p_S - p_T) / tau, so
tau^2 keeps its size comparable to the cross-entropy's when tau changes.

``Distillation`` wraps a student and its frozen teacher as one ``lmlib.neural.NeuralLM`` whose
``objective`` is ``"distill"``: ``lmlib.train`` trains it like any model (the student's
parameters only) and logs the student's cross-entropy on the data; its evaluation is the student's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lmlib.neural import NeuralLM


def kl_divergence(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                  temperature: float = 1.0) -> torch.Tensor:
    """[..., V] logits of the student and of the teacher -> [...] KL(p_T || p_S) in nats,
    each p = softmax(logits / temperature), in at least float32. The logits must be finite
    (leave out the columns of the tokens never predicted, which are -inf)."""
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"the student's logits have shape {tuple(student_logits.shape)} and the "
            f"teacher's {tuple(teacher_logits.shape)}: both models must score the same "
            "positions over the same vocabulary")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    dtype = torch.promote_types(student_logits.dtype, torch.float32)
    # [..., V]
    log_p_student = F.log_softmax(student_logits.to(dtype) / temperature, dim=-1)
    log_p_teacher = F.log_softmax(teacher_logits.to(dtype) / temperature, dim=-1)
    return (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(dim=-1)  # [...]


class Distillation(NeuralLM):
    """A student and its teacher, trained by ``lmlib.train`` with the loss
    (1 - weight) CE + weight temperature^2 KL(p_T || p_S) (``distillation_loss``; ``weight`` is lambda).

    The teacher is frozen (no gradients, evaluation mode throughout: no dropout); both models must read
    the same vocabulary. Scoring and the network are the student's, so evaluation measures the student.
    Train it with a ``TrainConfig`` as any model; afterwards ``.student`` is the trained model.
    """

    objective = "distill"

    def __init__(self, student: NeuralLM, teacher: NeuralLM, weight: float = 1.0, temperature: float = 1.0):
        super().__init__()
        if student.vocab is None or teacher.vocab is None or student.vocab.itos != teacher.vocab.itos:
            raise ValueError("the student and the teacher must have the same vocabulary (the same ids for the same "
                             "tokens): build the student with the teacher's vocab")
        if student.takes_state or student.objective != "causal" or teacher.objective != "causal":
            raise ValueError("Distillation trains a causal model that takes no state (a GPT, an MLP) from a causal "
                             "teacher")
        if not 0 <= weight <= 1:
            raise ValueError(f"weight (lambda) must be in [0, 1], got {weight}")
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.student, self.teacher = student, teacher.eval().requires_grad_(False)
        self.kl_weight, self.temperature = weight, temperature
        self.config, self.context_size = student.config, student.context_size
        self.register_vocab(student.vocab, len(student.vocab))

    def train(self, mode: bool = True) -> Distillation:
        super().train(mode)
        self.teacher.eval()  # the teacher's distribution is its evaluation-mode one, without dropout
        return self

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """[B, T] ids -> [B, T, V] the student's logits (what ``lmlib.train``'s cross-entropy reads)."""
        return self.student(ids)

    def hidden_states(self, ids: torch.Tensor, state: object | None = None) -> tuple[torch.Tensor, object]:
        return self.student.hidden_states(ids, state)

    def output(self, h: torch.Tensor) -> torch.Tensor:
        return self.student.output(h)

    def sequence_logprobs(self, ids: torch.Tensor) -> torch.Tensor:
        return self.student.sequence_logprobs(ids)  # the student's own scoring (a GPT's sliding window)

    def distillation_loss(self, ids: torch.Tensor, student_logits: torch.Tensor,
                          targets: torch.Tensor, cross_entropy: torch.Tensor) -> torch.Tensor:
        """(1 - lambda) CE + lambda tau^2 sum_t KL(p_T || p_S) over the positions t whose
        target is scored (``targets`` != -100): ``ids`` [B, T] read by both models, the
        student's logits [B, T, V], its cross-entropy summed over the same positions."""
        with torch.no_grad():
            teacher_logits = self.teacher(ids)  # [B, T, V]
        scored = targets != -100  # [B, T]
        # <pad> and <bos> are -inf in both models: part of neither distribution
        predicted = ~self.never_predicted
        kl = kl_divergence(student_logits[scored][:, predicted],  # [N, V'] -> [N]
                           teacher_logits[scored][:, predicted], self.temperature).sum()
        lam, tau = self.kl_weight, self.temperature
        return (1 - lam) * cross_entropy + lam * tau ** 2 * kl
