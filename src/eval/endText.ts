/**
 * The rule for an end token written out as text. A small model often spells its end token with
 * ordinary pieces (TinyStories-656K writes "<|end_story|>" as four tokens it learned in
 * pretraining) instead of emitting the end id, so generation does not stop there. A prediction
 * ends at the first occurrence of the end token's text; when generation stopped at the token
 * limit, a trailing beginning of that text (at least two characters, e.g. "<|end") is dropped too.
 * Applied to every backend's text before scoring and before predictions.jsonl is written.
 */
export function cutAtEndText(text: string, endText: string | null, stoppedBy: "eos" | "length"): string {
  return cutText(text, endText, stoppedBy).trim();
}

function cutText(text: string, endText: string | null, stoppedBy: "eos" | "length"): string {
  if (endText === null || endText === "") return text;
  const at = text.indexOf(endText);
  if (at >= 0) return text.slice(0, at);
  if (stoppedBy === "length") {
    for (let k = Math.min(endText.length - 1, text.length); k >= 2; k--) {
      if (text.endsWith(endText.slice(0, k))) return text.slice(0, text.length - k);
    }
  }
  return text;
}

export const END_TEXT_RULE =
  'a prediction ends at the first occurrence of the end token\'s text; a prediction cut by the token limit also loses a trailing start of that text (≥ 2 characters); then surrounding whitespace is removed, so that servers (which return " Yes") and llama.cpp ("Yes") write the same predictions';
