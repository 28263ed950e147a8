import { describe, expect, it } from "vitest";
import { DueSchedule } from "./due-schedule.ts";

function takeAll(schedule: DueSchedule, now: number): string[] {
  const taken: string[] = [];
  for (let id = schedule.takeDue(now); id !== undefined; id = schedule.takeDue(now)) taken.push(id);
  return taken;
}

describe("DueSchedule", () => {
  it("hands out what is due, earliest first and in scheduling order among equals", () => {
    const schedule = new DueSchedule();
    schedule.schedule("late", 300);
    schedule.schedule("b", 100);
    schedule.schedule("a", 50);
    schedule.schedule("c", 100);
    expect(schedule.peek()).toBe(50);
    expect(takeAll(schedule, 100)).toEqual(["a", "b", "c"]);
    expect(schedule.takeDue(299)).toBeUndefined();
    expect(schedule.peek()).toBe(300);
    expect(takeAll(schedule, 1000)).toEqual(["late"]);
    expect(schedule.peek()).toBeUndefined();
  });

  it("keeps one entry per message: a new time replaces the old, earlier or later", () => {
    const schedule = new DueSchedule();
    schedule.schedule("m", 100);
    schedule.schedule("m", 500);
    expect(schedule.peek()).toBe(500);
    schedule.schedule("m", 20);
    expect(takeAll(schedule, 1000)).toEqual(["m"]);
    expect(schedule.size).toBe(0);
    // Taken, then scheduled again at a time an old stale entry also has: handed out once.
    schedule.schedule("m", 500);
    expect(takeAll(schedule, 1000)).toEqual(["m"]);
  });

  it("skips a forgotten message", () => {
    const schedule = new DueSchedule();
    schedule.schedule("gone", 10);
    schedule.schedule("kept", 20);
    schedule.forget("gone");
    expect(schedule.peek()).toBe(20);
    expect(takeAll(schedule, 100)).toEqual(["kept"]);
  });

  it("does not grow with rescheduling: stale entries are dropped when they outnumber live ones", () => {
    const schedule = new DueSchedule();
    for (let round = 0; round < 50; round++) {
      for (let id = 0; id < 200; id++) schedule.schedule(`m${id}`, 10_000 - round);
    }
    expect(schedule.size).toBe(200);
    expect(schedule.heapSize).toBeLessThanOrEqual(2 * 200 + 1025);
    const taken = takeAll(schedule, 10_000);
    expect(new Set(taken).size).toBe(200);
    expect(taken).toHaveLength(200);
  });
});
