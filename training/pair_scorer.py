"""The pair model as torch trains it: a MiniLM encoder reading both questions, mean
pooling, and a linear head giving one logit; saved as weights and exported to ONNX."""

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from training.onnx_export import export_bert_inputs

MAX_TOKENS = 64  # a pair of questions: QQP's are ~12 words each


class Scorer:
    """The torch model being trained: encoder, mean pooling, a linear head → one logit."""

    def __init__(self, base: Path, seed: int) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        torch.manual_seed(seed)
        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(str(base))
        self.encoder = AutoModel.from_pretrained(str(base), attn_implementation="eager")
        self.head = torch.nn.Linear(self.encoder.config.hidden_size, 1)
        head_file = base / "head.pt"
        if head_file.exists():
            self.head.load_state_dict(torch.load(head_file, weights_only=True))

    def parameters(self) -> list[Any]:
        return [*self.encoder.parameters(), *self.head.parameters()]

    def logits(self, a: Sequence[str], b: Sequence[str]) -> Any:
        batch = self.tokenizer(list(a), list(b), padding=True, truncation=True,
                               max_length=MAX_TOKENS, return_tensors="pt")  # fmt: skip
        hidden = self.encoder(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return self.head(pooled).squeeze(-1)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.encoder.save_pretrained(str(folder))
        self.tokenizer.save_pretrained(str(folder))
        self.torch.save(self.head.state_dict(), folder / "head.pt")

    def export(self, onnx_path: Path) -> None:
        torch = self.torch
        encoder, head = self.encoder.eval(), self.head.eval()

        class PairLogit(torch.nn.Module):  # type: ignore[misc,name-defined]
            def __init__(self) -> None:
                super().__init__()
                self.encoder, self.head = encoder, head

            def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
                hidden = self.encoder(
                    input_ids=input_ids,
                    attention_mask=attention_mask,
                    token_type_ids=token_type_ids,
                ).last_hidden_state
                mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                return self.head(pooled).squeeze(-1)  # fmt: skip

        sample = self.tokenizer(["a question to trace", "short"], ["another one", "x"],
                                padding=True, return_tensors="pt")  # fmt: skip
        export_bert_inputs(PairLogit(), sample, onnx_path, "logit", {0: "batch"})
