param name string
param location string
param tags object = {}
@description('Identity granted AcrPull (apps pull with it; no admin user, no passwords)')
param pullPrincipalId string

resource registry 'Microsoft.ContainerRegistry/registries@2023-07-01' = {
  name: name
  location: location
  tags: tags
  sku: { name: 'Premium' }
  properties: {
    adminUserEnabled: false
    publicNetworkAccess: 'Enabled'
    policies: {
      retentionPolicy: { status: 'enabled', days: 30 }
      trustPolicy: { status: 'enabled', type: 'Notary' }
    }
  }
}

var acrPull = subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '7f951dda-4ed3-4680-a7ca-43fe172d538d')

resource pull 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(registry.id, pullPrincipalId, acrPull)
  scope: registry
  properties: { roleDefinitionId: acrPull, principalId: pullPrincipalId, principalType: 'ServicePrincipal' }
}

output loginServer string = registry.properties.loginServer
output name string = registry.name
