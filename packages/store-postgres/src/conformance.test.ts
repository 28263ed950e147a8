// The storage conformance suite against PostgreSQL (the real server at DATABASE_URL).
import { describeStoreConformance } from "@postern/testing/vitest";
import storePostgres, { openPostgresMailStore } from "./index.ts";
import { admin, databaseUrl, dropSchema, uniqueSchema } from "./test-database.ts";

describeStoreConformance("@postern/store-postgres", {
  async createStore() {
    const schema = uniqueSchema("conformance");
    const reader = openPostgresMailStore({ connectionString: databaseUrl, schema });
    await reader.migrate();
    return {
      plugin: storePostgres({ connectionString: databaseUrl, schema, chunkSize: "64KB" }),
      async read(recipient) {
        const copies = await reader.list(recipient.toLowerCase(), { limit: 1000 });
        return Promise.all(copies.map((copy) => reader.read(copy.id)));
      },
      // Fails the insert of the second chunk: the message row and first chunk are written by then.
      async breakStorage() {
        await admin(`
          CREATE FUNCTION "${schema}".fail_chunk() RETURNS trigger LANGUAGE plpgsql AS $$
          BEGIN
            IF NEW.seq >= 1 THEN RAISE EXCEPTION 'conformance: storage broke part-way'; END IF;
            RETURN NEW;
          END $$;
          CREATE TRIGGER fail_chunk BEFORE INSERT ON "${schema}".message_chunks
            FOR EACH ROW EXECUTE FUNCTION "${schema}".fail_chunk();`);
      },
      async restore() {
        await admin(`DROP TRIGGER fail_chunk ON "${schema}".message_chunks`);
      },
      async cleanup() {
        await reader.close();
        await dropSchema(schema);
      },
    };
  },
});
