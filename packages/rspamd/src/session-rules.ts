// Per-session settings: the first rule whose conditions all hold decides whether rspamd is asked,
// with which Settings-ID, and what Postern does with its actions (e.g. never reject mail from an
// authenticated user, only mark it). No rule matching means the plugin's own settings.
import type { Session } from "@postern/core";
import type { ResolvedActions, ResolvedRspamdOptions, ResolvedRule } from "./options.ts";

export interface SessionSettings {
  readonly skip: boolean;
  readonly settingsId: string | undefined;
  readonly actions: ResolvedActions;
  /** Which rule decided (its index in `rules`), for the result and the logs. */
  readonly rule: number | undefined;
}

function matches(rule: ResolvedRule, session: Session): boolean {
  const { listeners, authenticated, networks } = rule.when;
  if (listeners && !listeners.includes(session.listener.name)) return false;
  if (authenticated !== undefined && (session.user !== undefined) !== authenticated) return false;
  if (networks && !networks.contains(session.remoteAddress)) return false;
  return true;
}

export function settingsFor(session: Session, options: ResolvedRspamdOptions): SessionSettings {
  const index = options.rules.findIndex((rule) => matches(rule, session));
  const rule = index === -1 ? undefined : options.rules[index]!;
  return {
    skip: rule?.skip ?? false,
    settingsId: rule?.settingsId ?? options.settingsId,
    actions: rule?.actions ? overlay(options.actions, rule.actions) : options.actions,
    rule: index === -1 ? undefined : index,
  };
}

function overlay(base: ResolvedActions, given: Partial<ResolvedActions>): ResolvedActions {
  const merged = { ...base };
  for (const [key, value] of Object.entries(given) as [
    keyof ResolvedActions,
    ResolvedActions[keyof ResolvedActions],
  ][]) {
    if (value !== undefined) merged[key] = value;
  }
  return merged;
}
