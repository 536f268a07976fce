// The official openai Node SDK against a Cortex server: node responses_client.cjs BASE_URL KEY MODEL.
// Prints one JSON object of what each call returned; tests/runtime/v1/test_responses_node.py checks it.
const { OpenAI } = require("openai");

const [baseURL, apiKey, model] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 120_000 });
const weather = {
  type: "function",
  name: "weather",
  description: "The weather in a city.",
  parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
  strict: true,
};
const number = { type: "object", properties: { n: { type: "integer" } }, required: ["n"], additionalProperties: false };

async function main() {
  const seen = {};
  const plain = await client.responses.create({ model, input: "My name is Ada. Say hello.", max_output_tokens: 8 });
  seen.plain = { id: plain.id, text: plain.output_text, status: plain.status, usage: plain.usage };

  const stream = await client.responses.create({ model, input: "Count to five.", max_output_tokens: 8, stream: true });
  seen.events = [];
  for await (const event of stream) seen.events.push([event.type, event.sequence_number]);

  const force = { type: "function", name: "weather" };
  const called = await client.responses.create({
    model, input: "What is the weather in Paris?", tools: [weather], tool_choice: force, max_output_tokens: 64, temperature: 0,
  });
  const call = called.output.find((item) => item.type === "function_call");
  const answered = await client.responses.create({
    model, previous_response_id: called.id, tools: [weather], max_output_tokens: 8,
    input: [{ type: "function_call_output", call_id: call.call_id, output: "Sunny, 21 C" }],
  });
  seen.tool = { name: call.name, arguments: JSON.parse(call.arguments), answer: answered.output[0].type };

  const structured = await client.responses.create({
    model, input: "Pick a number.", max_output_tokens: 32, temperature: 0,
    text: { format: { type: "json_schema", name: "number", schema: number, strict: true } },
  });
  seen.json = JSON.parse(structured.output_text);

  const continued = await client.responses.create({
    model, previous_response_id: plain.id, input: "What is my name?", max_output_tokens: 8,
  });
  seen.continued = { previous: continued.previous_response_id, usage: continued.usage };
  seen.retrieved = (await client.responses.retrieve(continued.id)).id;
  console.log(JSON.stringify(seen));
}

main().catch((error) => {
  console.error(`${error.constructor.name}: ${error.message}`);
  process.exit(1);
});
