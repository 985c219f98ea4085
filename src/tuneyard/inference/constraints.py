"""Constrained decoding: JSON mode and forced tool calls, checked character by character.

A small model asked for JSON writes prose about as often as JSON, so ``response_format:
json_object`` and a forced ``tool_choice`` are enforced while decoding: a token is eligible only
if its text keeps the output a valid prefix of what is wanted, and when the remaining token
budget gets tight the shortest completion is forced, so the result parses even at ``max_tokens``.

Acceptors are pure: ``step(state, ch)`` returns the next state or None, states are tuples, so
trying a candidate token never disturbs the real state.
"""

from __future__ import annotations

from typing import Any

_WS = " \t\n\r"
_MAX_WS_RUN = 16  # a model can loop on newlines forever; JSON never needs that many in a row
_ESCAPES = '"\\/bfnrt'
_HEX = "0123456789abcdefABCDEF"
_DIGITS = "0123456789"

# Modes of the JSON acceptor.
ROOT, VALUE, KEY_OR_END, KEY, COLON, AFTER, ARR_FIRST, STRING, NUMBER, LITERAL, DONE = range(11)


class JsonAcceptor:
    """Prefixes of one JSON value (an object when ``object_root``). State: (mode, stack, extra, ws_run)."""

    def __init__(self, object_root: bool = True):
        self.object_root = object_root

    def initial(self) -> tuple:
        return (ROOT, (), None, 0)

    def done(self, state) -> bool:
        return state[0] == DONE

    def step(self, state, ch: str):
        mode, stack, extra, ws = state
        if mode == STRING:
            return self._string(state, ch)
        if mode == NUMBER:
            nxt = _number_step(extra, ch)
            if nxt is not None:
                return (NUMBER, stack, nxt, 0)
            if extra not in _NUMBER_FINAL:
                return None
            return self.step((AFTER, stack, None, 0), ch)
        if mode == LITERAL:
            if ch != extra[0]:
                return None
            rest = extra[1:]
            return (LITERAL, stack, rest, 0) if rest else _after_value(stack)
        if ch in _WS:
            if mode == DONE or ws >= _MAX_WS_RUN:
                return None
            return (mode, stack, extra, ws + 1)
        if mode == ROOT:
            if self.object_root and ch != "{":
                return None
            return self._value(stack, ch)
        if mode in (VALUE, ARR_FIRST):
            if mode == ARR_FIRST and ch == "]":
                return _after_value(stack[:-1])
            return self._value(stack, ch)
        if mode == KEY_OR_END and ch == "}":
            return _after_value(stack[:-1])
        if mode in (KEY_OR_END, KEY):
            return (STRING, stack, (True, 0), 0) if ch == '"' else None
        if mode == COLON:
            return (VALUE, stack, None, 0) if ch == ":" else None
        if mode == AFTER:
            if not stack:
                return None
            top = stack[-1]
            if ch == ",":
                return (KEY, stack, None, 0) if top == "{" else (VALUE, stack, None, 0)
            if (top == "{" and ch == "}") or (top == "[" and ch == "]"):
                return _after_value(stack[:-1])
        return None

    def _value(self, stack, ch):
        if ch == "{":
            return (KEY_OR_END, stack + ("{",), None, 0)
        if ch == "[":
            return (ARR_FIRST, stack + ("[",), None, 0)
        if ch == '"':
            return (STRING, stack, (False, 0), 0)
        if ch == "-" or ch in _DIGITS:
            return (NUMBER, stack, _number_step("start", ch), 0)
        for word in ("true", "false", "null"):
            if ch == word[0]:
                return (LITERAL, stack, word[1:], 0)
        return None

    def _string(self, state, ch):
        _, stack, (is_key, esc), _ = state
        if esc == 1:  # after a backslash
            if ch in _ESCAPES:
                return (STRING, stack, (is_key, 0), 0)
            return (STRING, stack, (is_key, 2), 0) if ch == "u" else None
        if esc >= 2:  # inside \uXXXX
            if ch not in _HEX:
                return None
            return (STRING, stack, (is_key, 0 if esc == 5 else esc + 1), 0)
        if ch == '"':
            return (COLON, stack, None, 0) if is_key else _after_value(stack)
        if ch == "\\":
            return (STRING, stack, (is_key, 1), 0)
        return None if ord(ch) < 0x20 else state

    def fixed(self, state) -> str:
        """Text that must come next whatever the model prefers (the rest of true/false/null)."""
        return state[2] if state[0] == LITERAL else ""

    def closing(self, state) -> str:
        """The shortest text that completes ``state``."""
        out = []
        while not self.done(state):
            ch = self._closing_char(state)
            out.append(ch)
            state = self.step(state, ch)
        return "".join(out)

    def _closing_char(self, state) -> str:
        mode, stack, extra, _ = state
        if mode == STRING:
            return "0" if extra[1] >= 2 else ('"' if extra[1] == 0 else "n")
        if mode == NUMBER:
            return "0" if extra not in _NUMBER_FINAL else _closer(stack)
        if mode == LITERAL:
            return extra[0]
        if mode == ROOT:
            return "{"
        if mode == VALUE:
            return "n"
        if mode == KEY:
            return '"'
        if mode == COLON:
            return ":"
        if mode in (KEY_OR_END, ARR_FIRST, AFTER):
            return _closer(stack)
        raise AssertionError(mode)


def _closer(stack) -> str:
    return "}" if stack[-1] == "{" else "]"


def _after_value(stack):
    return (AFTER, stack, None, 0) if stack else (DONE, (), None, 0)


# Number grammar: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
_NUMBER_FINAL = {"zero", "int", "frac", "exp"}


def _number_step(sub: str, ch: str) -> str | None:
    digit = ch in _DIGITS
    if sub in ("start", "minus"):
        if sub == "start" and ch == "-":
            return "minus"
        return ("zero" if ch == "0" else "int") if digit else None
    if sub == "int" and digit:
        return "int"
    if sub in ("zero", "int"):
        return "dot" if ch == "." else ("e" if ch in "eE" else None)
    if sub in ("dot", "frac"):
        return "frac" if digit else ("e" if sub == "frac" and ch in "eE" else None)
    if sub == "e":
        return "esign" if ch in "+-" else ("exp" if digit else None)
    if sub in ("esign", "exp"):
        return "exp" if digit else None
    return None


class SequenceAcceptor:
    """Parts in a row: literal text, a choice among names, or a JSON value. For forced tool calls:
    ``{"name": "<one of the tools>", "arguments": <object>}``."""

    def __init__(self, parts: list[tuple[str, Any]]):
        self.parts = parts  # ("lit", text) | ("choice", [names]) | ("json", JsonAcceptor)

    def initial(self):
        return self._enter(0)

    def _enter(self, i):
        if i >= len(self.parts):
            return (i, None)
        kind, arg = self.parts[i]
        return (i, 0 if kind == "lit" else "" if kind == "choice" else arg.initial())

    def done(self, state) -> bool:
        return state[0] >= len(self.parts)

    def step(self, state, ch):
        i, inner = state
        if i >= len(self.parts):
            return None
        kind, arg = self.parts[i]
        if kind == "lit":
            if arg[inner] != ch:
                return None
            return self._enter(i + 1) if inner + 1 == len(arg) else (i, inner + 1)
        if kind == "choice":
            if any(name.startswith(inner + ch) for name in arg):
                return (i, inner + ch)
            return self.step(self._enter(i + 1), ch) if inner in arg else None
        nxt = arg.step(inner, ch)
        if nxt is None:
            return None
        return self._enter(i + 1) if arg.done(nxt) else (i, nxt)

    def fixed(self, state) -> str:
        i, inner = state
        if i >= len(self.parts):
            return ""
        kind, arg = self.parts[i]
        if kind == "lit":
            return arg[inner:]
        return arg.fixed(inner) if kind == "json" else ""

    def closing(self, state) -> str:
        out = []
        while not self.done(state):
            i, inner = state
            kind, arg = self.parts[i]
            if kind == "lit":
                text = arg[inner:]
            elif kind == "choice":
                name = next(n for n in arg if n.startswith(inner))
                text = name[len(inner):] or ""
                if not text:  # complete name: move on to the next part
                    state = self._enter(i + 1)
                    continue
            else:
                text = arg.closing(inner)
            for ch in text:
                state = self.step(state, ch)
            out.append(text)
        return "".join(out)


class TokenConstraint:
    """An acceptor applied to tokens: which ones may come next, and the forced ending."""

    def __init__(self, acceptor, vocab: "TokenTexts", max_tokens: int):
        self.acceptor, self.vocab = acceptor, vocab
        self.state = acceptor.initial()
        self.remaining = max_tokens

    @property
    def done(self) -> bool:
        return self.acceptor.done(self.state)

    def _feed(self, state, text: str):
        for ch in text:
            state = self.acceptor.step(state, ch)
            if state is None:
                return None
        return state

    def allows(self, token: int) -> bool:
        """The token keeps the output valid, and what it leaves still fits in the remaining budget."""
        text = self.vocab.text(token)
        if not text:
            return False
        state = self._feed(self.state, text)
        if state is None:
            return False
        return self.acceptor.done(state) or len(self.acceptor.closing(state)) <= self.remaining - 1

    def fallback_token(self) -> int:
        """The first character of the shortest completion: always valid."""
        return self.vocab.char_token(self.acceptor.closing(self.state)[0])

    def forced_token(self) -> int | None:
        """Text fixed by the grammar goes out as the longest token that spells its start; and when the
        budget only just covers the shortest completion, that completion goes out char by char."""
        ending = self.acceptor.closing(self.state)
        if ending and self.remaining <= len(ending) + 1:
            return self.vocab.char_token(ending[0])
        fixed = self.acceptor.fixed(self.state)
        return self.vocab.longest_prefix_token(fixed) if fixed else None

    def accept(self, token: int) -> str:
        text = self.vocab.text(token)
        self.state = self._feed(self.state, text)
        self.remaining -= 1
        return text


class TokenTexts:
    """Each token's text on its own (computed once per tokenizer), and a token for each single char."""

    def __init__(self, tokenizer):
        size = len(tokenizer)
        special = set(tokenizer.all_special_ids)
        texts = tokenizer.batch_decode([[i] for i in range(size)], skip_special_tokens=False)
        self._texts = ["" if i in special or "\ufffd" in t else t for i, t in enumerate(texts)]
        self._by_text: dict[str, int] = {}
        for i, t in enumerate(self._texts):
            if t and t not in self._by_text:
                self._by_text[t] = i
        self._longest = max(len(t) for t in self._by_text)

    def text(self, token: int) -> str:
        return self._texts[token] if 0 <= token < len(self._texts) else ""

    def char_token(self, ch: str) -> int:
        if ch not in self._by_text:
            raise RuntimeError(f"the tokenizer has no single token for {ch!r}")
        return self._by_text[ch]

    def longest_prefix_token(self, text: str) -> int:
        for n in range(min(len(text), self._longest), 0, -1):
            token = self._by_text.get(text[:n])
            if token is not None:
                return token
        return self.char_token(text[0])
