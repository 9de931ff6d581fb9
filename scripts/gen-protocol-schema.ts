/**
 * Writes docs/openapi.json from the zod schemas in shared/protocol (see protocol-schema.ts).
 *
 *   npm run gen:schema            regenerate the committed file
 *   npm run gen:schema -- --check exit 1 when the committed file is stale
 */
import { readFileSync, writeFileSync } from "node:fs";
import { PROTOCOL_SCHEMA_PATH, renderProtocolDocument } from "./protocol-schema.ts";

const file = new URL(`../${PROTOCOL_SCHEMA_PATH}`, import.meta.url);
const text = renderProtocolDocument();
if (process.argv.includes("--check")) {
  let current = "";
  try {
    current = readFileSync(file, "utf8");
  } catch {
    // A missing file is stale too.
  }
  if (current !== text) {
    console.error(`${PROTOCOL_SCHEMA_PATH} is stale: run npm run gen:schema and commit the result.`);
    process.exit(1);
  }
  console.log(`${PROTOCOL_SCHEMA_PATH} is current.`);
} else {
  writeFileSync(file, text);
  console.log(`wrote ${PROTOCOL_SCHEMA_PATH}`);
}
