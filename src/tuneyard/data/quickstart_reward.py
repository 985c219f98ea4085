"""The quickstart's reward: 1.0 for the right sum, 0.2 for a wrong number, 0.0 for no number at all."""

import re


def reward(prompts, completions, answer, **kwargs):
    scores = []
    for completion, expected in zip(completions, answer):
        numbers = re.findall(r"-?\d+", completion)
        if not numbers:
            scores.append(0.0)
        elif expected in numbers[:3]:
            scores.append(1.0)
        else:
            scores.append(0.2)
    return scores
