// Whether a session's listener is among those an option names (by name or by port).
import type { ListenerInfo } from "@postern/core";

export type ListenerSelection = boolean | readonly (string | number)[];

export function selectsListener(selection: ListenerSelection, listener: ListenerInfo): boolean {
  if (typeof selection === "boolean") return selection;
  return selection.some((entry) => (typeof entry === "number" ? entry === listener.port : entry === listener.name));
}
