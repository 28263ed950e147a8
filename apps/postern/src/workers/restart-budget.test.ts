import { describe, expect, it } from "vitest";
import { RestartBudget } from "./restart-budget.ts";

describe("RestartBudget", () => {
  const policy = { maxRestarts: 3, windowMs: 60_000, firstDelayMs: 100, maxDelayMs: 300 };

  it("restarts a dying worker after a pause that doubles, up to the ceiling", () => {
    const budget = new RestartBudget(policy);
    expect(budget.died(1, 0)).toEqual({ restart: true, delayMs: 100 });
    expect(budget.died(1, 1000)).toEqual({ restart: true, delayMs: 200 });
    expect(budget.died(1, 2000)).toEqual({ restart: true, delayMs: 300 });
  });

  it("gives up on a worker that dies more often than the budget within the window", () => {
    const budget = new RestartBudget(policy);
    for (const at of [0, 10, 20]) expect(budget.died(2, at).restart).toBe(true);
    expect(budget.died(2, 30)).toEqual({ restart: false, deaths: 4 });
  });

  it("forgets deaths older than the window, and counts each worker on its own", () => {
    const budget = new RestartBudget(policy);
    for (const at of [0, 10, 20]) budget.died(1, at);
    expect(budget.died(2, 30)).toEqual({ restart: true, delayMs: 100 });
    expect(budget.died(1, 60_015)).toEqual({ restart: true, delayMs: 200 });
  });
});
