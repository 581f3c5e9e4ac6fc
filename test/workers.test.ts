import { afterEach, describe, expect, it } from "vitest";
import { LoramixError } from "../src/errors.js";
import { startWorker, WorkerChannel } from "../src/util/workers.js";

const channels: WorkerChannel<string, string, number>[] = [];
function open(): WorkerChannel<string, string, number> {
  const channel = new WorkerChannel<string, string, number>(
    startWorker(new URL("./fixtures/protocolWorker.js", import.meta.url)),
  );
  channels.push(channel);
  return channel;
}
afterEach(async () => {
  await Promise.all(channels.splice(0).map((c) => c.terminate()));
});

describe("the worker protocol", () => {
  it("delivers events before the result, and answers requests in flight by id, not by order", async () => {
    const channel = open();
    const events: number[] = [];
    const slow = channel.request("slow:300");
    const fast = channel.request("fast", { onEvent: (e) => events.push(e) });
    expect(channel.busy).toBe(2);
    const order: string[] = [];
    await Promise.all([slow.then((r) => order.push(r)), fast.then((r) => order.push(r))]);
    expect(order).toEqual(["done fast", "done slow:300"]);
    expect(events).toEqual([1, 2, 3]);
    expect(channel.busy).toBe(0);
  });

  it("a user's error comes back as the same LoramixError; a bug keeps its class and the worker's stack", async () => {
    const channel = open();
    const user = await channel.request("user").catch((e: unknown) => e);
    expect(user).toBeInstanceOf(LoramixError);
    expect((user as LoramixError).code).toBe("INPUT");
    expect((user as Error).message).toBe("data.jsonl: line 3 is not JSON");
    const bug = (await channel.request("bug").catch((e: unknown) => e)) as Error;
    expect(bug).not.toBeInstanceOf(LoramixError);
    expect(bug.name).toBe("TypeError");
    expect(bug.stack).toContain("protocolWorker");
    // The worker survives both and keeps answering.
    await expect(channel.request("again")).resolves.toBe("done again");
    expect(channel.alive).toBe(true);
  });

  it("a crash fails every request in flight and marks the channel dead", async () => {
    const channel = open();
    const waiting = channel.request("slow:2000");
    const crash = channel.request("crash");
    await expect(crash).rejects.toThrow(/exited with code 3/);
    await expect(waiting).rejects.toThrow(/exited with code 3/);
    expect(channel.alive).toBe(false);
    await expect(channel.request("later")).rejects.toThrow(/exited with code 3/);
  });
});
