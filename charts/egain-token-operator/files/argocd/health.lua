-- Argo CD health of an EgainToken, EgainClient or ClusterEgainClient
-- (egain.cloud): the verdict kstatus gives, with Ready's message.
-- Progressing until the operator has written a status for the object's
-- generation; then Degraded while Stalled (a failure that needs a person),
-- Healthy while Ready, Progressing otherwise (Reconciling: on its way).
local hs = {status = "Progressing", message = "waiting for the operator"}
local status = obj.status
if status == nil or status.conditions == nil then
  return hs
end
local generation = obj.metadata.generation or 0
if status.observedGeneration == nil or status.observedGeneration < generation then
  hs.message = "waiting for the operator to serve generation " .. generation
  return hs
end
local ready = nil
local stalled = false
for _, condition in ipairs(status.conditions) do
  if condition.type == "Ready" then
    ready = condition
  elseif condition.type == "Stalled" and condition.status == "True" then
    stalled = true
  end
end
if ready == nil then
  return hs
end
hs.message = ready.message or ""
if stalled then
  hs.status = "Degraded"
elseif ready.status == "True" then
  hs.status = "Healthy"
end
return hs
