// Key Vault for the API key and the database targets; apps read them by reference with their identity.
param name string
param location string
param tags object = {}
param readerPrincipalId string
param adminPrincipalId string = ''
@secure()
param secrets array

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: { family: 'A', name: 'standard' }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 30
    enablePurgeProtection: true
    publicNetworkAccess: 'Enabled'
    networkAcls: { defaultAction: 'Allow', bypass: 'AzureServices' }
  }
}

resource secret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = [for s in secrets: {
  parent: vault
  name: s.name
  properties: { value: s.value, contentType: 'text/plain', attributes: { exp: dateTimeToEpoch(dateTimeAdd(utcNow(), 'P1Y')) } }
}]

var secretsUser = subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '4633458b-17de-408a-b874-0445c86b69e6')
var secretsOfficer = subscriptionResourceId('Microsoft.Authorization/roleDefinitions', 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7')

resource reader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, readerPrincipalId, secretsUser)
  scope: vault
  properties: { roleDefinitionId: secretsUser, principalId: readerPrincipalId, principalType: 'ServicePrincipal' }
}

resource admin 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(adminPrincipalId)) {
  name: guid(vault.id, adminPrincipalId, secretsOfficer)
  scope: vault
  properties: { roleDefinitionId: secretsOfficer, principalId: adminPrincipalId, principalType: 'User' }
}

output name string = vault.name
output secretUris array = [for (s, i) in secrets: secret[i].properties.secretUri]
