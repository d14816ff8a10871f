"""Robustness ladders for the lane benchmark: per-rung statistics with confidence intervals,
their markdown tables and one robustness-curve plot per perturbation.

A ladder is a perturbation at increasing strength (``["", "noise=0.1", "noise=0.2"]``); every
model is evaluated on the same held-out tracks at every rung. Per rung and model:

- departures/km with an exact (Garwood) 95 % Poisson interval: departures are counted as
  events over the kilometres actually driven, so ``[chi2(a/2, 2k) / 2, chi2(1-a/2, 2k+2) / 2]
  / km``. An episode ends at its first departure; the exposure is the distance driven before
  it, which is what a rate of departures per km measures. With training seeds pooled the
  interval covers evaluation noise, not seed-to-seed spread (report seeds separately for that).
- success rate (finished without a departure) with a Wilson 95 % interval over episodes.
- mean |lateral offset| pooled over all steps (no interval: steps within an episode are
  strongly correlated, and the departure rate is the quantity the ladder ranks on).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from scipy import stats

from liquid_control.bench.report import slug

CONFIDENCE = 0.95


def poisson_rate_interval(
    events: int, exposure: float, confidence: float = CONFIDENCE
) -> tuple[float, float]:
    """Exact (Garwood) interval of a Poisson rate: ``events`` seen over ``exposure``."""
    if exposure <= 0:
        return 0.0, math.inf
    alpha = 1.0 - confidence
    low = 0.0 if events == 0 else stats.chi2.ppf(alpha / 2, 2 * events) / 2
    high = stats.chi2.ppf(1 - alpha / 2, 2 * events + 2) / 2
    return float(low / exposure), float(high / exposure)


def wilson_interval(
    successes: int, trials: int, confidence: float = CONFIDENCE
) -> tuple[float, float]:
    """Wilson score interval of a proportion (sensible at 0 and 1, unlike the normal one)."""
    if trials == 0:
        return 0.0, 1.0
    z = stats.norm.ppf(1 - (1 - confidence) / 2)
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = (
        z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    )
    return max(0.0, centre - half), min(1.0, centre + half)


def rung_summary(metrics: list[dict[str, Any]]) -> dict[str, Any]:
    """Pool one rung's evaluation metrics (one per training seed; ``evaluate_model``'s
    ``metrics``) into departures/km, success rate and mean |offset| with their intervals;
    the offset is weighted by km driven."""
    departures = sum(m["departures"] for m in metrics)
    km = sum(m["km_driven"] for m in metrics)
    episodes = sum(m["episodes"] for m in metrics)
    successes = round(sum(m["success_rate"] * m["episodes"] for m in metrics))
    steps_weighted = sum(m["mean_abs_offset_m"] * m["km_driven"] for m in metrics)
    return {
        "episodes": episodes,
        "km_driven": km,
        "departures": departures,
        "departures_per_km": departures / km if km > 0 else math.inf,
        "departures_per_km_ci": poisson_rate_interval(departures, km),
        "success_rate": successes / episodes if episodes else 0.0,
        "success_rate_ci": wilson_interval(successes, episodes),
        "mean_abs_offset_m": steps_weighted / km if km > 0 else math.nan,
    }


def ladder_markdown(
    ladders: dict[str, list[str]], models: dict[str, Any], plot_dir: str
) -> list[str]:
    """One table per ladder: models by rung, departures/km [95 % CI], success, |offset|."""
    lines = [
        "",
        "## Robustness ladders",
        "",
        "Departures/km with an exact Poisson 95 % interval over the km driven; success rate "
        f"(Wilson 95 %); mean |offset| in m. One plot per ladder in `{plot_dir}/`.",
    ]
    for ladder, rungs in ladders.items():
        lines += [
            "",
            f"### {ladder}",
            "",
            "| model | " + " | ".join(r or "clean" for r in rungs) + " |",
            "|---|" + "---|" * len(rungs),
        ]
        for name, row in models.items():
            cells = []
            for rung in row["ladders"][ladder]:
                low, high = rung["departures_per_km_ci"]
                cells.append(
                    f"{rung['departures_per_km']:.2f} [{low:.2f}, {high:.2f}]; "
                    f"{rung['success_rate']:.2f}; {rung['mean_abs_offset_m']:.3f}"
                )
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def plot_ladders(
    out_dir: Path, ladders: dict[str, list[str]], models: dict[str, Any]
) -> list[Path]:
    """One robustness curve per ladder, every model on it: departures/km (95 % interval as
    error bars) and success rate against rung. Returns the PNG paths."""
    from liquid_control.visual import pyplot, save_figure

    plt = pyplot()

    paths = []
    for ladder, rungs in ladders.items():
        fig, (rate_ax, success_ax) = plt.subplots(1, 2, figsize=(11, 4))
        x = list(range(len(rungs)))
        for k, (name, row) in enumerate(models.items()):
            # Models side by side around each rung, so equal values do not hide each other.
            dodged = [i + 0.05 * (k - 0.5 * (len(models) - 1)) for i in x]
            points = row["ladders"][ladder]
            rate = [p["departures_per_km"] for p in points]
            low = [p["departures_per_km"] - p["departures_per_km_ci"][0] for p in points]
            high = [p["departures_per_km_ci"][1] - p["departures_per_km"] for p in points]
            rate_ax.errorbar(dodged, rate, yerr=[low, high], marker="o", capsize=3, label=name)
            success_ax.plot(dodged, [p["success_rate"] for p in points], marker="o", label=name)
        for ax, title in ((rate_ax, "departures per km (95 % CI)"), (success_ax, "success rate")):
            ax.set_xticks(x, [(r or "clean").replace(",", "\n") for r in rungs], fontsize=8)
            ax.set_title(title)
            ax.grid(alpha=0.3)
        success_ax.set_ylim(-0.05, 1.05)
        rate_ax.legend(fontsize=7)
        fig.suptitle(f"lane keeping: {ladder}")
        path = out_dir / f"{slug(ladder)}.png"
        save_figure(fig, path)
        paths.append(path)
    return paths
