-- Argo CD health of a ModelFleet TrainingJob (Lua 5.1, as Argo CD runs it).
local hs = {}
if obj.status == nil or obj.status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the ModelFleet operator"
  return hs
end
local c = {}
for _, cond in ipairs(obj.status.conditions) do c[cond.type] = cond end
if c["Ready"] ~= nil and c["Ready"].reason == "InvalidSpec" then
  hs.status = "Degraded"
  hs.message = c["Ready"].message
  return hs
end
if c["Succeeded"] ~= nil and c["Succeeded"].status == "True" then
  hs.status = "Healthy"
  hs.message = c["Succeeded"].message or "Succeeded"
  return hs
end
if c["Failed"] ~= nil and c["Failed"].status == "True" then
  hs.status = "Degraded"
  hs.message = c["Failed"].reason .. ": " .. (c["Failed"].message or "")
  return hs
end
hs.status = "Progressing"
if c["Queued"] ~= nil and c["Queued"].status == "True" then
  hs.message = "Queued (" .. c["Queued"].reason .. "): " .. (c["Queued"].message or "")
elseif c["Running"] ~= nil and c["Running"].status == "True" then
  hs.message = c["Running"].message or "Running"
else
  hs.message = "Starting"
end
return hs
