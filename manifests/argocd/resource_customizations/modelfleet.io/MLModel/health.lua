-- Argo CD health of a ModelFleet MLModel (Lua 5.1, as Argo CD runs it).
local hs = {}
local function conditions(obj)
  local out = {}
  if obj.status ~= nil and obj.status.conditions ~= nil then
    for _, c in ipairs(obj.status.conditions) do out[c.type] = c end
  end
  return out
end
if obj.status == nil or obj.status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the ModelFleet operator"
  return hs
end
if obj.metadata.generation ~= nil and (obj.status.observedGeneration == nil or obj.status.observedGeneration < obj.metadata.generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. obj.metadata.generation
  return hs
end
local c = conditions(obj)
local ready, serving, trained, approved, degraded = c["Ready"], c["Serving"], c["Trained"], c["Approved"], c["Degraded"]
if ready ~= nil and ready.reason == "InvalidSpec" then
  hs.status = "Degraded"
  hs.message = ready.message
  return hs
end
if degraded ~= nil and degraded.status == "True" then
  hs.status = "Degraded"
  hs.message = degraded.reason .. ": " .. (degraded.message or "")
  return hs
end
if serving ~= nil and serving.reason == "ScaledToZero" then
  hs.status = "Suspended"
  hs.message = serving.message
  return hs
end
if approved ~= nil and approved.status == "False" and approved.reason == "AwaitingApproval" and (serving == nil or serving.status ~= "True") then
  hs.status = "Suspended"
  hs.message = approved.message
  return hs
end
if trained ~= nil and trained.status == "False" and trained.reason == "TrainingFailed" then
  hs.status = "Degraded"
  hs.message = trained.message
  return hs
end
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = (serving ~= nil and serving.message) or "Ready"
  return hs
end
hs.status = "Progressing"
if trained ~= nil and trained.status ~= "True" then
  hs.message = trained.message or "Training"
elseif serving ~= nil then
  hs.message = serving.message or serving.reason
else
  hs.message = (ready ~= nil and ready.message) or "Reconciling"
end
return hs
