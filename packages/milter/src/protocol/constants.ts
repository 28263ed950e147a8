// The milter protocol's numbers (Sendmail's libmilter, protocol version 6), as facts: command and
// reply codes are single ASCII bytes, flags are bits of 32-bit words exchanged in option negotiation.

export const protocolVersion = 6;

/** Commands the MTA sends (SMFIC_*). */
export const Command = {
  abort: "A",
  body: "B",
  connect: "C",
  macro: "D",
  endOfBody: "E",
  helo: "H",
  quitNewConnection: "K",
  header: "L",
  mail: "M",
  endOfHeaders: "N",
  optionNegotiation: "O",
  quit: "Q",
  rcpt: "R",
  data: "T",
  unknown: "U",
} as const;
export type CommandCode = (typeof Command)[keyof typeof Command];

/** Replies and modification requests the milter sends (SMFIR_*). */
export const Reply = {
  addRecipient: "+",
  deleteRecipient: "-",
  addRecipientWithParameters: "2",
  shutdown: "4",
  accept: "a",
  replaceBody: "b",
  continue: "c",
  discard: "d",
  changeFrom: "e",
  connectionFailure: "f",
  addHeader: "h",
  insertHeader: "i",
  setSymbolList: "l",
  changeHeader: "m",
  progress: "p",
  quarantine: "q",
  reject: "r",
  skip: "s",
  tempfail: "t",
  replyCode: "y",
  optionNegotiation: "O",
} as const;

/** Modification actions a milter may ask for (SMFIF_*); the MTA offers a set, the milter picks. */
export const ActionFlag = {
  addHeaders: 0x01,
  changeBody: 0x02,
  addRecipients: 0x04,
  deleteRecipients: 0x08,
  changeHeaders: 0x10,
  quarantine: 0x20,
  changeFrom: 0x40,
  addRecipientsWithParameters: 0x80,
  setSymbolList: 0x100,
} as const;

/** Protocol steps (SMFIP_*): steps the milter does not want (NO*) or will not answer (NR_*). */
export const ProtocolFlag = {
  noConnect: 0x01,
  noHelo: 0x02,
  noMail: 0x04,
  noRcpt: 0x08,
  noBody: 0x10,
  noHeaders: 0x20,
  noEndOfHeaders: 0x40,
  noReplyHeader: 0x80,
  noUnknown: 0x100,
  noData: 0x200,
  skip: 0x400,
  rejectedRecipients: 0x800,
  noReplyConnect: 0x1000,
  noReplyHelo: 0x2000,
  noReplyMail: 0x4000,
  noReplyRcpt: 0x8000,
  noReplyData: 0x10000,
  noReplyUnknown: 0x20000,
  noReplyEndOfHeaders: 0x40000,
  noReplyBody: 0x80000,
  headerLeadingSpace: 0x100000,
  maxDataSize256K: 0x10000000,
  maxDataSize1M: 0x20000000,
} as const;

/** Macro stages of SMFIR_SETSYMLIST (SMFIM_*), and the command each stage's macros precede. */
export const MacroStage = {
  connect: 0,
  helo: 1,
  mail: 2,
  rcpt: 3,
  data: 4,
  endOfMessage: 5,
  endOfHeaders: 6,
} as const;
export type MacroStageName = keyof typeof MacroStage;

export const macroStageCommand: Record<MacroStageName, CommandCode> = {
  connect: Command.connect,
  helo: Command.helo,
  mail: Command.mail,
  rcpt: Command.rcpt,
  data: Command.data,
  endOfMessage: Command.endOfBody,
  endOfHeaders: Command.endOfHeaders,
};

/** A body chunk's largest size unless a larger one was negotiated (MILTER_CHUNK_SIZE). */
export const defaultChunkSize = 65_535;

/** Every step this client can leave out or not wait for, offered in option negotiation. */
export const offeredProtocolFlags: number =
  ProtocolFlag.noConnect |
  ProtocolFlag.noHelo |
  ProtocolFlag.noMail |
  ProtocolFlag.noRcpt |
  ProtocolFlag.noBody |
  ProtocolFlag.noHeaders |
  ProtocolFlag.noEndOfHeaders |
  ProtocolFlag.noReplyHeader |
  ProtocolFlag.noUnknown |
  ProtocolFlag.noData |
  ProtocolFlag.skip |
  ProtocolFlag.noReplyConnect |
  ProtocolFlag.noReplyHelo |
  ProtocolFlag.noReplyMail |
  ProtocolFlag.noReplyRcpt |
  ProtocolFlag.noReplyData |
  ProtocolFlag.noReplyUnknown |
  ProtocolFlag.noReplyEndOfHeaders |
  ProtocolFlag.noReplyBody |
  ProtocolFlag.headerLeadingSpace |
  ProtocolFlag.maxDataSize256K |
  ProtocolFlag.maxDataSize1M;
